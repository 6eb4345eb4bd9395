"""Evaluate: how good is the model, in factory words; the threshold; mistakes; what to try next."""


from ui.common import ensure_router, guarded, page_header

ensure_router()  # a direct link to this page still gets the app frame


@guarded
def main() -> None:
    page_header("Evaluate", "How good is the model on photos kept aside from training: defects caught, false alarms, "
                            "and where it goes wrong.")
    from ui.evaluate_views import choose_run, render_evaluate  # after the header: it shows while these load

    run = choose_run()
    if run is not None:
        render_evaluate(run)


main()

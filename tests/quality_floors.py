"""The quality tiers' one check on a bench row: a recipe carries the reference's motion above the base model from
the same seeds (and, where given, keeps the prompted look and does not copy the reference's)."""


def assert_carries_motion(figures: dict, recipe: str, *, fidelity: float, gain: float, appearance: float | None = None,
                          leakage: float | None = None) -> None:
    """figures: `bench quality`'s per-recipe figures, "base" included; every failure shows them all."""
    row = figures[recipe]
    assert row["fidelity"] >= fidelity, figures
    assert row["fidelity"] >= figures["base"]["fidelity"] + gain, figures
    if appearance is not None:
        assert row["appearance"] >= appearance, figures
    if leakage is not None:
        assert row["leakage"] <= leakage, figures

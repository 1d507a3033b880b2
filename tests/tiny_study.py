"""The [metrics] table of the tiny study files in the tests: sample sizes small enough for seconds
a cell. Appended after a study's other text (TOML allows the table there)."""

SIZES = dict(samples=200, factor_train=10, factor_eval=10, factor_variance=200, dci_train=100, dci_test=50,
             gen_samples=200, oracle_steps=10, fid_samples=100)


def metrics_block(**values) -> str:
    """'\\n[metrics]\\n...' with SIZES, then `values` (a value overrides; True/False for the switches
    gen, fid and dci, which are on by default: DCI's boosted trees take seconds a cell, so most
    tests turn it off)."""
    table = dict(SIZES, **values)
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in table.items()]
    return "\n[metrics]\n" + "\n".join(lines) + "\n"

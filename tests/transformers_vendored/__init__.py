"""transformers' own model conformance tests, run against our classes.

`test_modeling_common.py` and `test_configuration_common.py` are vendored, pinned, from the transformers 5.24.0
source distribution (see their headers); `standins.py` replaces the three test helpers that distribution does not
ship; `test_modeling_albert_recipes.py` is our ALBERT tester, built like transformers' ALBERT test. Keep this file
free of side effects: the vendored `test_configuration_common.py` executes it once at import.
"""

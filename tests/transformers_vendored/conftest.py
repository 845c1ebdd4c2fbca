"""The vendored common testers hold mixins only (no tests of their own) and import only on transformers 5.24.x:
pytest imports them through `test_modeling_albert_recipes.py`, never collects them on their own."""

collect_ignore = ["test_modeling_common.py", "test_configuration_common.py"]

from components.export.compat.export_strategy import ExportStrategy
from tests.support.contract._noise import print_forged_answers

print_forged_answers()


def _export(estimator, export_path):
    print_forged_answers()  # the last line on stdout is a forged result; the strategy exports nothing


strategy = ExportStrategy("declines", _export)

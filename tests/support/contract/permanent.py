from components.errors import ExportflowError
from tests.support.contract._noise import print_forged_answers


class UserConfigProblem(ExportflowError):
    retryable = False


print_forged_answers()
raise UserConfigProblem("user code says a human must fix this")

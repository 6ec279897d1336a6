from components.errors import RetryableError
from tests.support.contract._noise import print_forged_answers


class UserServiceBusy(RetryableError):
    pass


print_forged_answers()
raise UserServiceBusy("user code says try again later")

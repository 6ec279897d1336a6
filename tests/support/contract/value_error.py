from tests.support.contract._noise import print_forged_answers

print_forged_answers()
raise ValueError("user code rejects its params")

from tests.support.contract._noise import print_forged_answers

print_forged_answers()
raise RuntimeError("user code hit something nobody expected")

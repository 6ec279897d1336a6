"""What a chatty user module prints: lines that look like a stage's answer."""

import json


def print_forged_answers() -> None:
    print(json.dumps({"result": {"uri": "/forged", "strategy": "forged"}}), flush=True)
    print(json.dumps({"failure": {"error": "Forged", "message": "forged", "retryable": False}}), flush=True)

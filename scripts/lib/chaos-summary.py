"""Prints one line about an `unrace chaos --json` result (the file named by the first argument)."""
import json
import sys

result = json.loads(open(sys.argv[1]).readline())
anomalies = result["anomalies"]
print(
    "{operations} orders, {kills} worker kills, {restarts} database restarts, {seconds:.0f} s; ".format(**result)
    + "duplicate effects {duplicateEffects}, lost {lostOperations}, unexpected {unexpectedEffects}, "
      "not conserved {imbalances}, out of order {outOfOrder}; ".format(**anomalies)
    + "provider: {providerCharges} charges ({duplicateCharges} duplicate), {emailsSent} emails ({duplicateEmails} duplicate), "
      "{absorbedByKeys} repeats absorbed by keys".format(**result)
)

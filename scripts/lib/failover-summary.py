"""Prints one line about an `unrace chaos --failover … --json` result (the file named by the first argument)."""
import json
import sys

r = json.loads(open(sys.argv[1]).readline())
print(
    "{operations} orders, {failovers} failover ({failoverMode}), {kills} worker kills, {seconds:.0f} s; ".format(**r)
    + "acknowledged but missing {acknowledgedButMissing}, ran again {ranAgain}, duplicate effects {duplicateEffects}, ".format(**r)
    + "5xx other than 503: {serverErrors}, longest request {longestRequestSeconds:.1f} s, serve stopped {shutdownSeconds:.2f} s after SIGTERM".format(**r)
)

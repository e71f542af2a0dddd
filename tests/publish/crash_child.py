"""Child process for the crash test: publish one detection and stall between blob upload and Cosmos write.

argv[1] is a JSON object: spool, connection_string, cosmos_endpoint, cosmos_key, names (AzureNames fields).
Prints BLOBS-UPLOADED once both blobs are in Azurite, then waits (bounded) to be SIGKILLed by the test.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hydrophone_worker.publish.outbox import Outbox
from hydrophone_worker.publish.sinks.azure import AzureNames, AzureSink

from tests.publish.conftest import LOCATION, START, make_clip, make_score


def main() -> None:
    args = json.loads(sys.argv[1])
    sink = AzureSink.from_keys(
        storage_connection_string=args["connection_string"],
        cosmos_endpoint=args["cosmos_endpoint"],
        cosmos_key=args["cosmos_key"],
        names=AzureNames(**args["names"]),
    )

    def stall(record: dict) -> None:
        print("BLOBS-UPLOADED", flush=True)
        time.sleep(60)  # the parent kills us long before; bounded so a broken test cannot hang forever
        sys.exit("not killed")

    sink.write_record = stall  # the crash window: blobs written, document not yet
    outbox = Outbox(Path(args["spool"]), [sink])
    outbox.put(make_clip(START), make_score(), LOCATION)
    outbox.deliver_pending()


if __name__ == "__main__":
    main()

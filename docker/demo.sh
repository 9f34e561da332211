#!/usr/bin/env bash
# `make demo` on the compose cluster: generate synthetic MovieLens on the shared /data volume,
# then prepare it on the standalone master. Runs in the submit container:
#   docker compose -f docker/compose.yaml run --rm submit
set -euo pipefail
cd /opt/sparkrec
python jobs/generate.py --users "${DEMO_USERS:-2000}" --seed 7 --output /data/demo/raw
spark-submit --properties-file conf/spark/standalone.conf --master spark://master:7077 \
    jobs/prepare.py --input /data/demo/raw --output /data/demo/prepared --config conf/prepare.yaml

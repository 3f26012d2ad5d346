#!/usr/bin/env bash
# The README's picture of the main metrics during `make demo`: Debian's Prometheus
# scraping the demo's --metrics_port (9464) every second, and Prometheus's own graph page
# of five of the dashboard's queries shot by headless Chromium (Debian's `chromium`), one
# page a query, put side by side with Pillow.
#   apt-get install prometheus chromium   # once
#   bash docs/metrics-picture.sh [docs/metrics-demo.png]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/metrics-demo.png}
WORK=$(mktemp -d)
cat > "$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: vectorstream
    static_configs: [{targets: ['127.0.0.1:9464']}]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
    --web.listen-address=127.0.0.1:9090 > "$WORK/prometheus.log" 2>&1 &
PROM=$!
trap 'kill $PROM 2>/dev/null || true; rm -rf "$WORK"' EXIT
# 6,000 events at 60/s: about 100 s of traffic (one in 50 malformed).
.venv/bin/vectorstream demo --count 6000 --rate 60 --bad_fraction 0.02 &
DEMO=$!
sleep 100
urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
QUERIES=(
  'sum(rate(vectorstream_events_read_total[15s]))'
  'sum(rate(vectorstream_points_written_total[15s]))'
  'sum by (stage) (rate(vectorstream_dead_letters_total[15s]))'
  'histogram_quantile(0.99, sum by (le) (rate(vectorstream_event_to_stored_seconds_bucket[15s])))'
  'sum by (partition) (vectorstream_kafka_consumer_lag)'
)
# One page a query (a page of several scrolls to its last), stitched two by three.
for i in "${!QUERIES[@]}"; do
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,720 \
      --virtual-time-budget=15000 --screenshot="$WORK/q$i.png" \
      "http://127.0.0.1:9090/graph?g0.expr=$(urlencode "${QUERIES[$i]}")&g0.tab=0&g0.range_input=2m" \
      2>/dev/null
done
.venv/bin/python - "$OUT" "$WORK"/q*.png <<'PY'
import sys
from PIL import Image
out, shots = sys.argv[1], [Image.open(p) for p in sys.argv[2:]]
w, h = shots[0].size
sheet = Image.new("RGB", (2 * w, 3 * h), "white")
for i, shot in enumerate(shots):
    sheet.paste(shot, ((i % 2) * w, (i // 2) * h))
sheet = sheet.resize((sheet.width * 6 // 10, sheet.height * 6 // 10), Image.LANCZOS)
sheet.save(out, optimize=True)
PY
wait $DEMO
echo "wrote $OUT"

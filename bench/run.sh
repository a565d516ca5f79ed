#!/usr/bin/env bash
# Gatehouse's benchmark suite: one command, every scenario.
#
#   bench/run.sh                                  # 3 rounds, about 9 minutes
#   BENCH_ROUNDS=1 BENCH_SECONDS=4 BENCH_SLICES=2 bench/run.sh   # a quick look
#
# It installs wrk and curl (Debian) if they are missing, builds the release
# binary, measures one password hash at the configured cost with the criterion
# benchmark, starts the server on a free loopback port with a fresh SQLite
# database and one test user, drives load with wrk, stops everything it
# started, and prints one line per scenario (medians of the rounds) with the
# ratios the targets are stated in. The throughput scenarios of a round run
# in interleaved slices (floor verify items … items verify floor, twice) whose
# latency histograms are merged exactly, so a ratio compares figures taken
# side by side, under the same machine load.
#
# Settings (environment):
#   BENCH_ROUNDS         rounds of every scenario (3)
#   BENCH_SECONDS        length of each throughput scenario in a round (12)
#   BENCH_SLICES         slices the throughput scenarios are cut into, run
#                        interleaved (4: 3 s each, floor verify … verify floor)
#   BENCH_LOGIN_SECONDS  length of the login and storm scenarios (15)
#   BENCH_CONNECTIONS    connections of verify-type load (64)
#   BENCH_LOGINS         connections that log in (8)
#   BENCH_HASH_MS        skip the criterion run and use this hash time (ms)
#   BENCH_NO_BUILD=1     use target/release/gatehouse as it is
#   BENCH_SERVER_ENV     extra VAR=value settings for the server, space-separated
#                        (e.g. "GATEHOUSE_AUTH_CACHE_TTL=0" to see the uncached path)
#   BENCH_NICE           run the server, wrk and the hash measurement at this
#                        nice level (e.g. -10 as root, to measure Gatehouse
#                        rather than whatever else the machine is running); with
#                        autogrouping (Linux's default for desktop and server
#                        kernels) nice only orders processes of one session, so
#                        the session's autogroup gets it too, until the end
#   GATEHOUSE_BCRYPT_COST  the configured cost (12)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-12}
slices_per_round=${BENCH_SLICES:-4}
[ "$slices_per_round" -ge 1 ] 2>/dev/null || { echo "bench: BENCH_SLICES must be a positive number" >&2; exit 2; }
slice_seconds=$((seconds / slices_per_round))
[ "$slice_seconds" -ge 1 ] || slice_seconds=1
login_seconds=${BENCH_LOGIN_SECONDS:-15}
connections=${BENCH_CONNECTIONS:-64}
logins=${BENCH_LOGINS:-8}
cost=${GATEHOUSE_BCRYPT_COST:-12}
cores=$(nproc)
threads=$cores
prio=()
[ -z "${BENCH_NICE:-}" ] || prio=(nice -n "$BENCH_NICE")
autogroup_nice=""

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# --- tools -------------------------------------------------------------------

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]} from Debian"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    command -v wrk >/dev/null || die "could not install wrk"
}

build() {
    if [ "${BENCH_NO_BUILD:-}" = 1 ]; then
        say "using the existing release binary"
    else
        say "building the release binary"
        (cd "$root" && cargo build --release --locked --bin gatehouse --quiet)
    fi
    bin="$root/target/release/gatehouse"
    [ -x "$bin" ] || die "no binary at $bin"
}

# The time of one password verification at the configured cost, in ms, from
# the criterion benchmark (its middle estimate): "single" alone, and "all"
# with one on every core at once. Prints "single all".
hash_ms() {
    if [ -n "${BENCH_HASH_MS:-}" ]; then
        echo "$BENCH_HASH_MS ${BENCH_HASH_ALL_MS:-$BENCH_HASH_MS}"
        return
    fi
    say "measuring bcrypt verification at cost $cost (criterion)"
    (cd "$root" && cargo bench --locked --quiet --bench password --no-run 2>/dev/null)
    (cd "$root" && GATEHOUSE_BCRYPT_COST=$cost "${prio[@]}" cargo bench --locked --quiet \
        --bench password -- --noplot 'password/' 2>/dev/null) | awk '
        function ms(v, u) {
            if (u == "s") return v * 1000
            if (u == "µs" || u == "us") return v / 1000
            return v
        }
        $1 ~ /^password\// { id = $1 }
        /time:/ {
            gsub(/[\[\]]/, "")
            for (i = 1; i <= NF; i++) if ($i == "time:") t[id] = ms($(i + 3), $(i + 4))
        }
        END {
            for (k in t) { if (k ~ /all-cores/) all = t[k]; else single = t[k] }
            if (!single || !all) exit 1
            printf "%.1f %.1f\n", single, all
        }' || die "could not read the criterion results"
}

# --- the server --------------------------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
server_pid=""
background=()

cleanup() {
    local pid
    for pid in "${background[@]}" $server_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${background[@]}" $server_pid; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    [ -z "$autogroup_nice" ] || echo "$autogroup_nice" >/proc/self/autogroup 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "found no free port"
}

port=$(free_port)
base="http://127.0.0.1:$port"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
database="sqlite://$work/gatehouse.db"

# Runs the binary with the benchmark's settings and nothing from the caller's
# environment. It replaces the calling (sub)shell, so call it in one.
server_env() {
    # shellcheck disable=SC2086 # BENCH_SERVER_ENV is a list of VAR=value words
    exec env -i PATH="$PATH" HOME="$work" DATABASE_URL="$database" SECRET_KEY_ENV="$secret" \
        GATEHOUSE_BIND="127.0.0.1:$port" GATEHOUSE_BCRYPT_COST="$cost" RUST_LOG="${RUST_LOG:-info}" \
        ${BENCH_SERVER_ENV:-} "${prio[@]}" "$@"
}

# Starts the server; sets server_pid, and startup_ms to the milliseconds from
# the start of the process to its first answered request.
start_server() {
    local start now
    start=$(date +%s%N)
    (cd "$work" && server_env "$bin" serve) >>"$work/server.log" 2>&1 &
    server_pid=$!
    until curl -sf -o /dev/null --max-time 1 "$base/healthz"; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            tail -n 20 "$work/server.log" >&2
            die "the server exited"
        fi
        now=$(date +%s%N)
        [ $(((now - start) / 1000000)) -lt 10000 ] || die "the server did not answer within 10 s"
    done
    now=$(date +%s%N)
    startup_ms=$(((now - start) / 1000000))
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$server_pid/status"; }

# --- load --------------------------------------------------------------------

results="$work/results"
slices="$work/slices"
: >"$results"
: >"$slices"

# load ROUND NAME CONNECTIONS SECONDS PATH AUTH [VAR=value ...]
# One wrk run (a slice of scenario NAME in round ROUND). AUTH is none, good
# or bad. Appends its RESULT line to $slices and its latency histogram to
# $work/histogram.ROUND.NAME; `combine` makes the round's figures of them.
load() {
    local round=$1 name=$2 conns=$3 secs=$4 path=$5 auth=$6
    shift 6
    local header=()
    case $auth in
        good) header=(-H "Authorization: Bearer $token") ;;
        bad) header=(-H "Authorization: Bearer $bad_token") ;;
    esac
    local line
    line=$(env BENCH_HISTOGRAM="$work/histogram.$round.$name" "$@" "${prio[@]}" wrk \
        -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$here/wrk.lua" "${header[@]}" \
        "$base$path" | awk '/^RESULT/ { $1 = ""; print }') || die "wrk failed in $name"
    [ -n "$line" ] || die "wrk printed no result in $name"
    echo "$round $name$line" >>"$slices"
}

# combine ROUND NAME: the round's figures of scenario NAME from its slices:
# requests and errors added up, req/s over the time of all slices, and p50
# and p99 of all their latencies together (the histograms merged). Appends
# "ROUND NAME req/s p50 p99 requests errors 503s timeouts" to $results and
# prints it.
combine() {
    local round=$1 name=$2 percentiles line
    percentiles=$(sort -n "$work/histogram.$round.$name" | awk '
        { value[NR] = $1; count[NR] = $2; total += $2 }
        END {
            split("50 99", q)
            for (k = 1; k <= 2; k++) {
                want = total * q[k] / 100; seen = 0
                for (i = 1; i <= NR; i++) { seen += count[i]; if (seen >= want) break }
                printf "%d ", value[i]
            }
        }')
    line=$(awk -v r="$round" -v s="$name" -v p="$percentiles" '
        $1 == r && $2 == s { n += $6; e += $7; b += $8; t += $9; secs += $10 }
        END { split(p, q, " "); printf "%s %s %.1f %d %d %d %d %d %d\n", r, s, n / secs, q[1], q[2], n, e, b, t }' \
        "$slices")
    echo "$line" >>"$results"
    # shellcheck disable=SC2086
    set -- $line
    printf '  round %s  %-13s %10.1f req/s  p50 %s  p99 %s  errors %s\n' \
        "$round" "$name" "$3" "$(ms "$4")" "$(ms "$5")" "$7" >&2
}

ms() { awk -v us="$1" 'BEGIN { if (us >= 1e6) printf "%.2f s", us / 1e6; else printf "%.2f ms", us / 1e3 }'; }

login_body="grant_type=password&username=bench&password=$password"

# The throughput scenarios: name, path, auth, extra wrk settings.
throughput=(
    "floor /healthz none"
    "verify /users/me good"
    "items /users/me/items good"
    "reject-none /users/me none BENCH_EXPECT=401"
    "reject-bad /users/me bad BENCH_EXPECT=401"
)

round() {
    local r=$1 pass order i scenario
    # The throughput scenarios run in $slices_per_round slices each, in
    # forward order and then backward (floor verify … verify floor), so
    # that what the machine's other work does to one slice it does to the
    # neighbouring slices of the other scenarios too; a ratio within a
    # round compares figures taken side by side.
    for pass in $(seq 1 "$slices_per_round"); do
        if [ $((pass % 2)) = 1 ]; then order=(0 1 2 3 4); else order=(4 3 2 1 0); fi
        for i in "${order[@]}"; do
            # shellcheck disable=SC2086 # a scenario is a list of words
            set -- ${throughput[$i]}
            scenario=$1
            load "$r" "$scenario" "$connections" "$slice_seconds" "$2" "$3" "${@:4}"
            [ "$r" = 1 ] && [ "$scenario" = verify ] && [ "$pass" = 1 ] && rss_verify=$(peak_rss_kb)
        done
    done
    for i in 0 1 2 3 4; do
        # shellcheck disable=SC2086
        set -- ${throughput[$i]}
        combine "$r" "$1"
    done
    load "$r" login "$logins" "$login_seconds" /token none BENCH_BODY="$login_body" BENCH_CHECK=1
    combine "$r" login
    # The storm: the same verify load while logins run without pause.
    load "$r" storm-login "$logins" "$login_seconds" /token none \
        BENCH_BODY="$login_body" BENCH_CHECK=1 &
    background+=($!)
    load "$r" storm-verify "$connections" "$login_seconds" /users/me good
    wait "${background[@]}"
    background=()
    combine "$r" storm-verify
    combine "$r" storm-login
}

# --- the report --------------------------------------------------------------

# median of the numbers on standard input
median() {
    sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# column NAME FIELD: one value per round (fields: 3 req/s, 4 p50, 5 p99,
# 6 requests, 7 errors, 8 503s, 9 timeouts)
column() { awk -v s="$1" -v f="$2" '$2 == s { print $f }' "$results"; }

# ratio A B: the median over the rounds of A's req/s over B's
ratio() {
    awk -v a="$1" -v b="$2" '
        $2 == a { x[$1] = $3 } $2 == b { y[$1] = $3 }
        END { for (r in x) if (y[r] > 0) printf "%.3f\n", x[r] / y[r] }' "$results" | median
}

sum() { awk '{ s += $1 } END { print s + 0 }'; }

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "NOT met" }'; }

report_line() {
    local name=$1 note=$2
    local rps p50 p99 errors busy
    rps=$(column "$name" 3 | median)
    p50=$(column "$name" 4 | median)
    p99=$(column "$name" 5 | median)
    errors=$(column "$name" 7 | sum)
    busy=$(column "$name" 8 | sum)
    printf '%-13s %10.1f %11s %11s %7s %6s   %s\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" \
        "$errors" "$busy" "$note"
}

# --- main --------------------------------------------------------------------

ensure_tools
build
if [ -n "${BENCH_NICE:-}" ] && [ -w /proc/self/autogroup ]; then
    autogroup_nice=$(awk '{ print $NF }' /proc/self/autogroup)
    echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || autogroup_nice=""
fi
read -r hash hash_all < <(hash_ms)
[ -n "${hash_all:-}" ] || die "no hash time"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

say "creating the test user (bcrypt cost $cost)"
# Its audit line goes to the server's log, not between the figures.
(cd "$work" && printf '%s' "$password" |
    server_env "$bin" user add bench --password-stdin >/dev/null 2>>"$work/server.log") || {
    tail -n 5 "$work/server.log" >&2
    die "could not create the test user"
}

startups=()
for _ in 1 2 3; do
    start_server
    startups+=("$startup_ms")
    stop_server
done
startup=$(printf '%s\n' "${startups[@]}" | median)
start_server

token=$(curl -sf --max-time 10 "$base/token" -d "$login_body" |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/')
[ -n "$token" ] || die "could not log in"
bad_token="${token%.*}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
curl -sf -o /dev/null --max-time 5 -H "Authorization: Bearer $token" "$base/users/me" ||
    die "the token does not work"

say "warming up"
wrk -t"$threads" -c"$connections" -d2s -H "Authorization: Bearer $token" "$base/users/me" >/dev/null

for r in $(seq 1 "$rounds"); do
    say "round $r of $rounds"
    round "$r"
done
rss_peak=$(peak_rss_kb)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_server

limit=$(awk -v c="$cores" -v h="$hash" 'BEGIN { printf "%.2f", c * 1000 / h }')
limit_all=$(awk -v c="$cores" -v h="$hash_all" 'BEGIN { printf "%.2f", c * 1000 / h }')
verify_floor=$(ratio verify floor)
items_floor=$(ratio items floor)
storm_verify=$(ratio storm-verify verify)
storm_login=$(ratio storm-login login)
login_rate=$(column login 3 | median)
login_limit=$(awk -v l="$login_rate" -v m="$limit" 'BEGIN { printf "%.3f", l / m }')
login_limit_all=$(awk -v l="$login_rate" -v m="$limit_all" 'BEGIN { printf "%.3f", l / m }')
verify_p99=$(awk -v us="$(column verify 5 | median)" 'BEGIN { printf "%.2f", us / 1000 }')
storm_p99=$(awk -v us="$(column storm-verify 5 | median)" 'BEGIN { printf "%.2f", us / 1000 }')
storm_timeouts=$(column storm-login 9 | sum)
rss_verify_mb=$(awk -v k="$rss_verify" 'BEGIN { printf "%.1f", k / 1024 }')
rss_peak_mb=$(awk -v k="$rss_peak" 'BEGIN { printf "%.1f", k / 1024 }')

commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(cd "$root" && git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+changes"

cat <<EOF

Gatehouse $commit on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $cores cores; $(date -u '+%Y-%m-%d %H:%M UTC')
load average $load_before before, $load_after after${BENCH_NICE:+; benchmark processes at nice $BENCH_NICE}; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2) with $threads threads on the same machine
$rounds rounds; medians of the rounds; $connections connections ($logins for logins); $((slice_seconds * slices_per_round)) s per scenario and round in $slices_per_round interleaved slices (${login_seconds} s login and storm)
bcrypt cost $cost (criterion): one verification takes $hash ms alone, $hash_all ms with one on every core at once;
hashing limit: $cores / $hash ms = $limit logins/s from one hash alone, $cores / $hash_all ms = $limit_all logins/s with every core hashing

scenario           req/s         p50         p99  errors   503s   notes
EOF
report_line floor "the HTTP floor: GET /healthz"
report_line verify "$verify_floor x floor ($(verdict "$verify_floor" '>=' 0.85) >= 0.85); p99 $verify_p99 ms ($(verdict "$verify_p99" '<=' 5) <= 5)"
report_line items "$items_floor x floor"
report_line reject-none "no token: 401"
report_line reject-bad "bad signature: 401"
report_line login "$login_limit x hashing limit ($(verdict "$login_limit" '>=' 0.9) >= 0.9); $login_limit_all x the limit with every core hashing"
report_line storm-verify "$storm_verify x verify ($(verdict "$storm_verify" '>=' 0.5) >= 0.5); p99 $storm_p99 ms ($(verdict "$storm_p99" '<=' 15) <= 15)"
report_line storm-login "$storm_login x login ($(verdict "$storm_login" '>=' 0.25) >= 0.25); $storm_timeouts timeouts"
cat <<EOF
peak RSS under verify load  $rss_verify_mb MB ($(verdict "$rss_verify_mb" '<=' 40) <= 40); over the whole run $rss_peak_mb MB
start-up to first answer    $startup ms, median of ${startups[*]} ms on an existing database ($(verdict "$startup" '<=' 200) <= 200)
EOF

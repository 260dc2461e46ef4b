# Shared by the bench scripts (sourced, not run).

# Runs a command, its output discarded; prints "seconds peak_rss_bytes" of
# it (children included).
measure() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}")
PY
}

"""Four threads burning CPU in pure Python, fighting over the GIL, and one
thread blocked on a held lock (waiting, but not for the GIL)."""
import threading


def burn():
    count = 0
    while True: count += 1  # LINE:burn


held = threading.Lock()
held.acquire()


def blocked():
    held.acquire()  # LINE:blocked


for number in range(4):
    threading.Thread(target=burn, name=f"burner-{number}", daemon=True).start()
threading.Thread(target=blocked, name="blocked", daemon=True).start()
print("ready")
threading.Event().wait()

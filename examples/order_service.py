"""A small service for the demo: worker threads price orders (CPU work in
pure Python) while a dispatcher waits for new orders on a queue."""
import queue
import threading
import time

orders = queue.Queue()


def price(order_id):
    total = 0.0
    for line in range(2000):
        total += (order_id * 31 + line) % 97 * 0.25
    return total


def worker():
    while True:
        order_id = orders.get()
        price(order_id)


def dispatcher():
    order_id = 0
    while True:
        for _ in range(50):
            order_id += 1
            orders.put(order_id)
        time.sleep(0.01)


for number in range(3):
    threading.Thread(target=worker, name=f"worker-{number}", daemon=True).start()
threading.Thread(target=dispatcher, name="dispatcher", daemon=True).start()
print("order service running", flush=True)
while True:
    time.sleep(1)

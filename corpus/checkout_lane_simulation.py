# corpus: healthy
# story: a grocery chain compares checkout staffing plans with a discrete-event simulation: a heapq event queue drives arrivals, lane choice, service and hourly re-staffing through trading days, each plan replicated within a time box, with a time-weighted queue-length statistic kept as events fire
# run: launch
# forbid: PYDX-CPU001
"""Compare checkout staffing plans by simulating trading days at one supermarket."""
import heapq
import itertools
import random
import statistics
import time
from collections import deque

OPEN_HOUR, CLOSE_HOUR = 8, 22
# customers reaching the checkouts per hour of the day
ARRIVALS = {8: 50, 9: 80, 10: 110, 11: 140, 12: 200, 13: 180, 14: 130, 15: 140,
            16: 190, 17: 250, 18: 260, 19: 200, 20: 120, 21: 70}
LANES = 10
EXPRESS_LANES = 2  # lanes 0 and 1, always staffed, take baskets of at most EXPRESS_ITEMS
EXPRESS_ITEMS = 12
# staffing plans: regular lanes staffed per hour, besides the express lanes
PLANS = {
    "flat-5": {hour: 5 for hour in ARRIVALS},
    "lean": {hour: max(1, round(ARRIVALS[hour] / 55)) for hour in ARRIVALS},
    "peak-heavy": {hour: 3 + (ARRIVALS[hour] >= 190) * 3 + (ARRIVALS[hour] >= 250) * 2 for hour in ARRIVALS},
    "demand-led": {hour: max(2, min(LANES - EXPRESS_LANES, round(ARRIVALS[hour] / 38))) for hour in ARRIVALS},
}
TIME_BOX = 1.5  # seconds of simulation per plan


class Lane:
    __slots__ = ("number", "express", "line", "serving", "staffed", "busy_seconds", "served")

    def __init__(self, number):
        self.number = number
        self.express = number < EXPRESS_LANES
        self.line = deque()
        self.serving = False
        self.staffed = False
        self.busy_seconds = 0.0
        self.served = 0

    def load(self):
        return len(self.line) + self.serving


class TradingDay:
    def __init__(self, plan, rng):
        self.plan = plan
        self.rng = rng
        self.lanes = [Lane(number) for number in range(LANES)]
        self.events = []
        self.order = itertools.count()
        self.now = OPEN_HOUR * 3600.0
        self.queued = 0
        self.queue_area = 0.0  # integral of customers waiting over time
        self.waits = []
        self.hourly_wait = [0.0] * 24
        self.hourly_count = [0] * 24
        self.walked_out = 0

    def schedule(self, delay, action, *args):
        heapq.heappush(self.events, (self.now + delay, next(self.order), action, args))

    def run(self):
        for hour in ARRIVALS:
            self.schedule(hour * 3600 - self.now, self.restaff, hour)
        self.schedule(0.0, self.arrival)
        while self.events:
            when, _, action, args = heapq.heappop(self.events)
            self.queue_area += self.queued * (when - self.now)
            self.now = when
            action(*args)
        return self

    def arrival(self):
        hour = int(self.now // 3600)
        if hour >= CLOSE_HOUR:
            return
        self.schedule(self.rng.expovariate(ARRIVALS[hour] / 3600.0), self.arrival)
        items = max(1, int(self.rng.lognormvariate(2.3, 0.8)))
        self.join_line(items)

    def choose_lane(self, items):
        open_lanes = [lane for lane in self.lanes
                      if lane.staffed and (items <= EXPRESS_ITEMS or not lane.express)]
        return min(open_lanes, key=Lane.load)

    def join_line(self, items):
        lane = self.choose_lane(items)
        if len(lane.line) >= 8 and self.rng.random() < 0.5:
            self.walked_out += 1  # the shopper leaves the basket and walks out
            return
        lane.line.append((self.now, items))
        self.queued += 1
        if not lane.serving:
            self.start_service(lane)

    def start_service(self, lane):
        arrived, items = lane.line.popleft()
        self.queued -= 1
        wait = self.now - arrived
        self.waits.append(wait)
        hour = int(arrived // 3600)
        self.hourly_wait[hour] += wait
        self.hourly_count[hour] += 1
        scan = items * self.rng.uniform(2.2, 3.8)
        payment = self.rng.choice((12.0, 18.0, 18.0, 30.0, 45.0))  # contactless, card, cash...
        seconds = 20.0 + scan + payment  # greeting and bagging, scanning, paying
        lane.serving = True
        self.schedule(seconds, self.finish_service, lane, seconds)

    def finish_service(self, lane, seconds):
        lane.busy_seconds += seconds
        lane.served += 1
        lane.serving = False
        if lane.line:
            self.start_service(lane)

    def restaff(self, hour):
        staffed = EXPRESS_LANES + self.plan[hour]
        for lane in self.lanes:
            lane.staffed = lane.number < staffed
        # shoppers in the line of a lane that closes move to the shortest staffed line
        for lane in self.lanes[staffed:]:
            while lane.line:
                shopper = lane.line.popleft()
                target = self.choose_lane(shopper[1])
                target.line.append(shopper)
                if not target.serving:
                    self.start_service(target)

    def summary(self):
        waits = sorted(self.waits)
        lane_hours = sum(self.plan.values()) + EXPRESS_LANES * len(self.plan)
        worst_hour = max(range(24), key=lambda h: self.hourly_wait[h] / max(1, self.hourly_count[h]))
        return {
            "served": len(waits),
            "mean_wait": sum(waits) / len(waits),
            "p90_wait": waits[int(len(waits) * 0.9)],
            "mean_queue": self.queue_area / (self.now - OPEN_HOUR * 3600.0),
            "walked_out": self.walked_out,
            "worst_hour": worst_hour,
            "lane_hours": lane_hours,
            "utilisation": sum(lane.busy_seconds for lane in self.lanes) / (lane_hours * 3600.0),
        }


def evaluate(name, plan, rng):
    days = []
    deadline = time.monotonic() + TIME_BOX
    while time.monotonic() < deadline:
        days.append(TradingDay(plan, rng).run().summary())

    def mean(key):
        return statistics.fmean(day[key] for day in days)

    spread = statistics.stdev([day["p90_wait"] for day in days]) if len(days) > 1 else 0.0
    print("%-10s %3d days  %3d lane-hours  mean wait %5.1f s  p90 %6.1f s (+/- %4.1f)  "
          "queue %4.1f  walk-outs %5.1f  utilisation %3.0f%%  worst hour %02d:00"
          % (name, len(days), days[0]["lane_hours"], mean("mean_wait"), mean("p90_wait"), spread,
             mean("mean_queue"), mean("walked_out"), 100 * mean("utilisation"),
             statistics.mode(day["worst_hour"] for day in days)))


def main():
    rng = random.Random(1999)
    for name, plan in PLANS.items():
        evaluate(name, plan, rng)


if __name__ == "__main__":
    main()

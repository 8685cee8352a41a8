# corpus: planted
# story: a CI service picks the regression tests to run for each merge with a genetic algorithm over per-test line coverage; to use every core it evolves four islands of candidate selections in four threading.Thread workers, time-boxed per merge
# run: launch
"""Pick a regression-test selection per merge: most changed lines covered within the CI time budget."""
import operator
import random
import threading
import time

TESTS = 420
SOURCE_LINES = 9000
BUDGET = 300.0  # seconds of CI time a merge may spend on regression tests
ISLANDS = 4
POPULATION = 40
ELITE = 4
MIGRATE_EVERY = 10
TIME_BOX = 1.5  # seconds of optimisation per merge


def load_suite(rng):
    """Per-test line coverage (from the nightly coverage run) and typical durations."""
    coverage, durations = [], []
    for _ in range(TESTS):
        module = rng.randrange(0, SOURCE_LINES - 600)
        lines = set(rng.sample(range(module, module + 600), rng.randint(30, 220)))
        lines.update(rng.sample(range(SOURCE_LINES), rng.randint(5, 40)))  # shared helpers
        coverage.append(frozenset(lines))
        durations.append(round(rng.lognormvariate(1.2, 1.0), 2))
    return coverage, durations


COVERAGE, DURATIONS = load_suite(random.Random(11))


def fitness(selection, changed):
    """Risk of the changed lines the selection covers, less a steep penalty for overrunning the budget."""
    covered = set()
    for test in selection:
        covered.update(COVERAGE[test])
    risk = sum(changed[line] for line in covered.intersection(changed))
    seconds = sum(DURATIONS[test] for test in selection)
    return risk - 4.0 * max(0.0, seconds - BUDGET) - 0.01 * len(selection)


class Island:
    def __init__(self, name, changed, seed):
        self.name = name
        self.changed = changed
        self.rng = random.Random(seed)
        self.population = [self.random_selection() for _ in range(POPULATION)]
        self.generations = 0
        self.best = (float("-inf"), frozenset())
        self.inbox = []
        self.lock = threading.Lock()

    def random_selection(self):
        return frozenset(self.rng.sample(range(TESTS), self.rng.randint(10, 60)))

    def tournament(self, scored):
        return max(self.rng.sample(scored, 3), key=operator.itemgetter(0))[1]

    def crossover(self, first, second):
        keep = first & second
        rest = [test for test in first ^ second if self.rng.random() < 0.5]
        return keep.union(rest)

    def mutate(self, selection):
        tests = set(selection)
        for _ in range(self.rng.randint(1, 3)):
            if tests and self.rng.random() < 0.5:
                tests.discard(self.rng.choice(sorted(tests)))
            else:
                tests.add(self.rng.randrange(TESTS))
        return frozenset(tests)

    def generation(self):
        with self.lock:
            arrivals, self.inbox = self.inbox, []
        scored = [(fitness(selection, self.changed), selection)
                  for selection in self.population + arrivals]
        scored.sort(key=operator.itemgetter(0), reverse=True)
        if scored[0][0] > self.best[0]:
            self.best = scored[0]
        children = [selection for _, selection in scored[:ELITE]]
        while len(children) < POPULATION:
            child = self.crossover(self.tournament(scored), self.tournament(scored))
            children.append(self.mutate(child))
        self.population = children
        self.generations += 1

    def send_best(self, neighbour):
        with neighbour.lock:
            neighbour.inbox.append(self.best[1])


def evolve(island, neighbour, deadline):
    while time.monotonic() < deadline:
        island.generation()  # expect: PYDX-GIL001
        if island.generations % MIGRATE_EVERY == 0:
            island.send_best(neighbour)


def select_tests(merge, changed, seed):
    islands = [Island("%s/%d" % (merge, n), changed, seed=seed * ISLANDS + n)
               for n in range(ISLANDS)]
    deadline = time.monotonic() + TIME_BOX
    workers = [threading.Thread(target=evolve, name=island.name,
                                args=(island, islands[(n + 1) % ISLANDS], deadline))
               for n, island in enumerate(islands)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    best = max((island.best for island in islands), key=operator.itemgetter(0))
    return best, sum(island.generations for island in islands)


def main():
    rng = random.Random(2)
    for number in range(4):
        merge = "MR-%d" % (4100 + number)
        hot = rng.randrange(SOURCE_LINES - 2500)
        lines = rng.sample(range(hot, hot + 2500), 900) + rng.sample(range(SOURCE_LINES), 200)
        changed = {line: round(rng.uniform(0.2, 3.0), 2) for line in lines}  # churn-weighted risk
        (score, selection), generations = select_tests(merge, changed, seed=number)
        covered = set().union(*(COVERAGE[test] for test in selection)).intersection(changed)
        print("%s: %d tests, %.0f s, %d of %d changed lines covered (%d generations)"
              % (merge, len(selection), sum(DURATIONS[test] for test in selection),
                 len(covered), len(changed), generations))


if __name__ == "__main__":
    main()

# corpus: planted
# story: a CRM import job finds duplicate contacts in each uploaded batch of dataclass records by comparing every pair
# run: launch
"""Flag likely duplicate contacts in CRM import batches before they are merged."""
import random
import time
from dataclasses import dataclass, field
from typing import List, Tuple

FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Lena", "Max"]
LAST = ["Schmidt", "Meyer", "Weber", "Wagner", "Becker", "Hoffmann", "Koch", "Richter", "Klein", "Wolf"]
DOMAINS = ["example.org", "mail.test", "post.test", "web.test"]


@dataclass(frozen=True)
class Contact:
    contact_id: int
    name: str
    email: str
    phone: str
    postcode: str


@dataclass
class ImportBatch:
    source: str
    contacts: List[Contact]


@dataclass
class DuplicateReport:
    source: str
    checked: int
    pairs: List[Tuple[int, int]] = field(default_factory=list)


def normalise_email(email: str) -> str:
    local, _, domain = email.strip().lower().partition("@")
    return local.split("+", 1)[0] + "@" + domain


def fake_batch(rng: random.Random, source: str, size: int) -> ImportBatch:
    contacts = []
    for n in range(size):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = "%s.%s%d@%s" % (first.lower(), last.lower(), rng.randrange(400), rng.choice(DOMAINS))
        if rng.random() < 0.1:
            email = email.replace("@", "+crm@").upper()
        contacts.append(Contact(n, first + " " + last, normalise_email(email),
                                "+49 30 %07d" % rng.randrange(3000), "%05d" % rng.randrange(10000, 10400)))
    return ImportBatch(source, contacts)


def find_duplicates(batch: ImportBatch) -> DuplicateReport:
    report = DuplicateReport(batch.source, len(batch.contacts))
    contacts = batch.contacts
    for i, first in enumerate(contacts):
        for second in contacts[i + 1:]:
            if first.email == second.email or (first.phone == second.phone and first.postcode == second.postcode):  # expect: PYDX-CPU002
                report.pairs.append((first.contact_id, second.contact_id))
    return report


def main() -> None:
    rng = random.Random(99)
    start = time.monotonic()
    reports = []
    while time.monotonic() < start + 6:
        batch = fake_batch(rng, "upload-%03d" % len(reports), size=1200)
        reports.append(find_duplicates(batch))
    flagged = sum(len(report.pairs) for report in reports)
    print("checked %d batches, %d duplicate pairs flagged" % (len(reports), flagged))


if __name__ == "__main__":
    main()

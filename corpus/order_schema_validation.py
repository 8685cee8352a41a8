# corpus: planted
# story: an order importer validates uploaded JSON-lines order files against a nested schema, one file per task in a ThreadPoolExecutor of 4 threads
# run: launch
"""Validate uploaded order files (JSON lines) against the order schema."""
import json
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ADDRESS = {"type": "object", "required": ["street", "city", "postcode", "country"],
           "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                          "postcode": {"type": "string", "max_length": 10},
                          "country": {"type": "string", "enum": ["DE", "FR", "NL", "BE", "AT"]}}}
LINE = {"type": "object", "required": ["sku", "quantity", "unit_price"],
        "properties": {"sku": {"type": "string", "max_length": 12},
                       "quantity": {"type": "integer", "minimum": 1},
                       "unit_price": {"type": "number", "minimum": 0},
                       "tags": {"type": "array", "items": {"type": "string"}}}}
ORDER_SCHEMA = {"type": "object", "required": ["order_id", "customer", "lines"],
                "properties": {"order_id": {"type": "string"},
                               "customer": {"type": "object", "required": ["email", "address"],
                                            "properties": {"email": {"type": "string"},
                                                           "address": ADDRESS}},
                               "lines": {"type": "array", "items": LINE}}}
TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float)}


def validate(node, schema, path="$"):
    errors = []
    if not isinstance(node, TYPES[schema["type"]]):
        return [path + ": expected " + schema["type"]]
    if "enum" in schema and node not in schema["enum"]:
        errors.append(path + ": not one of " + ",".join(schema["enum"]))
    if "max_length" in schema and len(node) > schema["max_length"]:
        errors.append(path + ": too long")
    if "minimum" in schema and node < schema["minimum"]:
        errors.append(path + ": below minimum")
    if schema["type"] == "object":
        for key in schema.get("required", ()):
            if key not in node:
                errors.append(path + "." + key + ": missing")
        for key, sub_schema in schema.get("properties", {}).items():
            if key in node:
                errors.extend(validate(node[key], sub_schema, path + "." + key))
    elif schema["type"] == "array":
        for index, item in enumerate(node):
            errors.extend(validate(item, schema["items"], "%s[%d]" % (path, index)))
    return errors


def make_upload(rng, count):
    documents = []
    for n in range(count):
        lines = [{"sku": "SKU-%05d" % rng.randrange(20000), "quantity": rng.randint(0, 9),
                  "unit_price": round(rng.uniform(0.5, 300), 2),
                  "tags": rng.sample(["gift", "fragile", "bulk", "promo", "cold"], 2)}
                 for _ in range(rng.randint(3, 12))]
        documents.append({"order_id": "ORD-%07d" % n,
                          "customer": {"email": "c%d@example.org" % rng.randrange(5000),
                                       "address": {"street": "Hauptstr. %d" % rng.randint(1, 200),
                                                   "city": "Berlin", "postcode": "%05d" % rng.randrange(99999),
                                                   "country": rng.choice(["DE", "FR", "NL", "BE", "AT", "IT"])}},
                          "lines": lines})
    return documents


def check_file(path):
    rejected = {}
    checked = 0
    with open(path) as handle:
        for line in handle:
            document = json.loads(line)
            problems = validate(document, ORDER_SCHEMA)  # expect: PYDX-GIL001
            if problems:
                rejected[document["order_id"]] = problems
            checked += 1
    return checked, rejected


def receive_drop(inbox, number, partner_files):
    """Partners upload a file each per drop; order ids are unique per drop."""
    paths = []
    for partner, lines in enumerate(partner_files):
        path = os.path.join(inbox, "drop%05d-partner%02d.jsonl" % (number, partner))
        with open(path, "w") as handle:
            handle.writelines(line.replace('"ORD-', '"ORD-%05d-' % number, 1) for line in lines)
        paths.append(path)
    return paths


def main():
    rng = random.Random(42)
    partner_files = [[json.dumps(document) + "\n" for document in make_upload(rng, 150)] for _ in range(16)]
    inbox = tempfile.mkdtemp(prefix="order-inbox-")
    checked = rejected = drops = 0
    deadline = time.monotonic() + 6
    with ThreadPoolExecutor(max_workers=4) as pool:
        while time.monotonic() < deadline:
            paths = receive_drop(inbox, drops, partner_files)
            for count, bad in pool.map(check_file, paths):
                checked += count
                rejected += len(bad)
            for path in paths:
                os.remove(path)
            drops += 1
    os.rmdir(inbox)
    print("validated %d documents from %d drops, %d rejected" % (checked, drops, rejected))


if __name__ == "__main__":
    main()

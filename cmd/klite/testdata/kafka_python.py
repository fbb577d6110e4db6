"""kafka-python (Debian's python3-kafka) against klite: the admin calls, a
gzip producer with acks=all, a consumer group with commits, and topic
deletion. Prints one JSON object of what it saw; the Go test asserts on it.
Usage: kafka_python.py BOOTSTRAP TOPIC GROUP RECORDS"""
import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

bootstrap, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {}
adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
adm.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})])
out["listed"] = topic in adm.list_topics()
desc = adm.describe_topics([topic])[0]
out["partitions"] = len(desc["partitions"])
cfg = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])[0]
entries = {e[0]: e[1] for e in cfg.resources[0][4]}
out["retention_ms"] = entries.get("retention.ms")

prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=5)
futures = [prod.send(topic, key=b"k%d" % i, value=b"v%d" % i) for i in range(n)]
prod.flush()
acked = sum(1 for f in futures if f.get(timeout=30) is not None)
prod.close()
out["acked"] = acked

cons = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                     enable_auto_commit=False, consumer_timeout_ms=10000)
seen = {}
per_part = {}
for m in cons:
    seen[m.key.decode()] = m.value.decode()
    last = per_part.get(m.partition, -1)
    if m.offset <= last:
        out.setdefault("out_of_order", []).append([m.partition, m.offset])
    per_part[m.partition] = m.offset
    if len(seen) == n:
        break
cons.commit()
out["consumed"] = len(seen)
out["values_match"] = all(seen.get("k%d" % i) == "v%d" % i for i in range(n))
cons.close()

offs = adm.list_consumer_group_offsets(group)
out["committed"] = sum(o.offset for tp, o in offs.items() if tp.topic == topic)
out["groups"] = [g[0] for g in adm.list_consumer_groups()]
gd = adm.describe_consumer_groups([group])[0]
out["group_state"] = gd.state

adm.delete_topics([topic])
out["deleted"] = topic not in adm.list_topics()
adm.close()
print(json.dumps(out))

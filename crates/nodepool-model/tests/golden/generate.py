#!/usr/bin/env python3
"""Write the golden ZooKeeper documents with Nodepool 11.0.0's own classes.

Every golden file is the exact byte string that Nodepool's serializer produces
(`Node.serialize()`, `NodeRequest.serialize()`, `ImageBuild.serialize()`,
`ImageUpload.serialize()`, and `json.dumps(component.content, sort_keys=True)`
for components). Files under `input/` are documents written by someone else
(Zuul, an older Nodepool, a hand-edited znode); for each of them the matching
`*.rewritten.json` is what Nodepool writes back after `fromDict()` followed by
`serialize()`, i.e. Nodepool's read-modify-write result.

See README.md in this folder for how to run it.
"""

import json
import os
import random
import struct
import sys

from nodepool.zk import zookeeper as zk
from nodepool.zk.components import (
    BuilderComponent,
    LauncherComponent,
    PoolComponent,
)

HERE = os.path.dirname(os.path.abspath(__file__))

STATE_TIME = 1732550000.123456
CREATED_TIME = 1732549900.0
BUILD_ID = "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70"
POOL_WORKER = ("np1.example.com-PoolWorker.rax-dfw-main-"
               "0123456789abcdef0123456789abcdef")
ZUUL_SYSTEM = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def write_input(name, d):
    """Store a foreign document and what Nodepool writes back after reading it."""
    data = json.dumps(d).encode("utf8")
    write(os.path.join("input", name + ".json"), data)
    return data


def node(state):
    n = zk.Node()
    n.state = state
    n.state_time = STATE_TIME
    return n


def openstack_node():
    n = node(zk.READY)
    n.cloud = "mycloud"
    n.provider = "rax-dfw"
    n.pool = "main"
    n.type = ["ubuntu-jammy"]
    n.allocated_to = "200-0000001234"
    n.az = "nova"
    n.region = "DFW"
    n.public_ipv4 = "203.0.113.10"
    n.private_ipv4 = "10.0.0.10"
    n.public_ipv6 = "2001:db8::10"
    n.host_id = "hv-42"
    n.interface_ip = "203.0.113.11"
    n.connection_port = 2222
    n.image_id = ("/nodepool/images/ubuntu-jammy/builds/" + BUILD_ID +
                  "/providers/rax-dfw/images/0000000001")
    n.launcher = POOL_WORKER
    n.created_time = CREATED_TIME
    n.external_id = "3b0f6e2a-7c1d-4e5f-9a8b-0c1d2e3f4a5b"
    n.hostname = "np0000000042"
    n.comment = "Held for debugging: caf\u00e9 \u2615 \U0001F680 \"quoted\"\n"
    n.user_data = {"zuul_system": ZUUL_SYSTEM,
                   "project_name": "opendev.org/zuul/zuul"}
    n.hold_job = "openstack opendev.org/zuul/zuul zuul-tox refs/heads/master"
    n.host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx",
                   "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC"]
    n.username = "ubuntu"
    n.connection_type = "ssh"
    n.shell_type = "bash"
    n.hold_expiration = 86400
    n.resources = {"cores": 8, "instances": 1, "ram": 8192, "volumes": 1,
                   "volume-gb": 80}
    n.slot = 3
    n.attributes = {"executor-zone": "dfw", "flavor": {"ssd": True}}
    n.python_path = "/usr/bin/python3"
    n.tenant_name = "openstack"
    n.driver_data = {"any": ["thing", 1, 2.5, None, True]}
    n.requestor = ZUUL_SYSTEM
    n.node_properties = {"spot": False}
    return n


def kubernetes_node():
    n = node(zk.READY)
    n.cloud = "admin-cluster.local"
    n.provider = "k8s"
    n.pool = "main"
    n.type = ["pod-fedora"]
    n.allocated_to = "100-0000000007"
    n.host_id = "k8s-worker-1"
    n.interface_ip = "pod-fedora"
    n.connection_port = {
        "name": "zuul-worker",
        "namespace": "main-0000000043",
        "host": "https://k8s.example.com:6443",
        "skiptls": False,
        "token": "ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkluZz0=",
        "user": "zuul-worker",
        "ca_crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
        "pod": "pod-fedora",
    }
    n.connection_type = "kubectl"
    n.launcher = POOL_WORKER
    n.created_time = 1732549950.5
    n.external_id = "main-0000000043"
    n.python_path = "auto"
    n.resources = {"cores": 2, "instances": 1, "ram": 1024,
                   "ephemeral-storage": 10, "nvidia.com/gpu": 1}
    n.tenant_name = "example"
    n.requestor = ZUUL_SYSTEM
    return n


def aws_node():
    n = node(zk.IN_USE)
    n.cloud = "AWS"
    n.provider = "aws-us-east-1"
    n.pool = "main"
    n.type = ["debian-bookworm-arm64"]
    n.allocated_to = "099-0000000100"
    n.az = "us-east-1a"
    n.region = "us-east-1"
    n.private_ipv4 = "172.31.0.12"
    n.interface_ip = "172.31.0.12"
    n.image_id = "debian-bookworm"
    n.launcher = POOL_WORKER
    n.created_time = 1732549000.25
    n.external_id = {"instance": "i-0123456789abcdef0", "host": "h-0abc"}
    n.user_data = {"zuul_system": ZUUL_SYSTEM,
                   "project_name": "example.com/org/project"}
    n.host_keys = ["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY="]
    n.username = "admin"
    n.connection_type = "ssh"
    n.resources = {"cores": 2, "instances": 1, "ram": 4096,
                   "L-1216C47A": 2}
    n.python_path = "auto"
    n.tenant_name = "example"
    n.requestor = ZUUL_SYSTEM
    n.node_properties = {"fleet": False, "spot": True}
    return n


def static_node():
    n = node(zk.READY)
    n.provider = "static-rack"
    n.pool = "main"
    n.type = ["static-debian", "static-any"]
    n.interface_ip = "192.0.2.5"
    n.connection_port = 22022
    n.launcher = "static driver"
    n.created_time = STATE_TIME
    n.external_id = "builder05.example.com"
    n.hostname = "builder05.example.com"
    n.host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAA"]
    n.username = "zuul"
    n.connection_type = "ssh"
    n.slot = 0
    n.attributes = {"executor-zone": "rack-1"}
    n.python_path = "/usr/bin/python3"
    return n


def new_node():
    """A Node straight from the constructor, as the launcher first stores it."""
    n = node(zk.INIT)
    n.created_time = n.state_time
    return n


def gen_nodes():
    write("node_openstack.json", openstack_node().serialize())
    write("node_kubernetes.json", kubernetes_node().serialize())
    write("node_aws.json", aws_node().serialize())
    write("node_static.json", static_node().serialize())
    write("node_new.json", new_node().serialize())

    # Zuul's model.Node.toDict(): "id" first, then state, hold_job, comment,
    # user_data, tenant_name, requestor, then every other key it read, in the
    # order it read them (the "id" it added on read becomes one of them).
    # This one is the AWS node after Zuul's executor marked it in-use.
    read = json.loads(aws_node().serialize())
    read["id"] = "0000000044"
    zuul = {"id": "0000000044", "state": "in-use"}
    for key in ("hold_job", "comment", "user_data", "tenant_name",
                "requestor"):
        zuul[key] = read[key]
    for key, value in read.items():
        if key not in ("state", "name", "aliases"):
            zuul[key] = value
    # Something a newer writer might add.
    zuul["future_key"] = {"nested": [1, 2]}
    data = write_input("node_zuul_written", zuul)
    write("input/node_zuul_written.rewritten.json",
          zk.Node.fromDict(json.loads(data), "0000000044").serialize())

    # A node written by an old Nodepool: type as a bare string, only ssh_port,
    # hold_expiration as a string, many keys missing.
    legacy = {
        "state": "hold",
        "state_time": 1500000000.5,
        "provider": "old-cloud",
        "type": "centos-7",
        "interface_ip": "198.51.100.7",
        "ssh_port": 2022,
        "hold_expiration": "3600",
        "host_keys": ["ssh-rsa AAAA"],
        "obsolete": "dropped on rewrite",
    }
    data = write_input("node_legacy", legacy)
    write("input/node_legacy.rewritten.json",
          zk.Node.fromDict(json.loads(data), "0000000001").serialize())

    # The smallest document Nodepool can read: only the state keys.
    minimal = {"state": "building", "state_time": 1732550000.5}
    data = write_input("node_minimal", minimal)
    write("input/node_minimal.rewritten.json",
          zk.Node.fromDict(json.loads(data), "0000000002").serialize())

    # Explicit nulls where the reader has a non-null default for an absent key:
    # present-but-null keeps null (Python dict.get only defaults absent keys).
    nulls = {"state": "used", "state_time": 1732550001.75,
             "connection_port": None, "ssh_port": 2200, "username": None,
             "type": None, "hold_expiration": None, "node_properties": None,
             "external_id": None}
    data = write_input("node_nulls", nulls)
    write("input/node_nulls.rewritten.json",
          zk.Node.fromDict(json.loads(data), "0000000003").serialize())


def gen_hold_expiration_cases():
    """Python int() coercion of hold_expiration, as Node.updateFromDict does it."""
    values = [0, 3600, -5, 2.9, -2.9, 1e3, True, False, "3600", " 42 ", "+7",
              "-8", "1_000", "1.5", "", "abc", "1__0", "0x10", None, [], {},
              [1]]
    cases = []
    for v in values:
        try:
            result = zk.Node.fromDict(
                {"state": "hold", "state_time": 1.0, "hold_expiration": v}
            ).hold_expiration
        except TypeError:
            result = "TypeError"
        cases.append([v, result])
    write("hold_expiration_cases.json", json.dumps(cases).encode("utf8"))


def request(state):
    r = zk.NodeRequest()
    r.state = state
    r.state_time = STATE_TIME
    return r


def gen_requests():
    r = request(zk.FULFILLED)
    r.declined_by = [POOL_WORKER.replace("rax-dfw", "rax-ord")]
    r.node_types = ["ubuntu-jammy", "ubuntu-jammy", "centos-9"]
    r.nodes = ["0000000042", "0000000043", "0000000044"]
    r.reuse = True
    r.requestor = ZUUL_SYSTEM
    r.requestor_data = {
        "build_set_uuid": "b5e0c8a1d2f34e56a7b8c9d0e1f2a3b4",
        "tenant_name": "openstack",
        "pipeline_name": "check",
        "job_uuid": "c0ffee00c0ffee00c0ffee00c0ffee00",
        "job_name": "tox-py311",
        "span_info": {"span_id": "abc", "trace_id": "def"},
    }
    r.provider = "rax-dfw"
    r.relative_priority = 2
    r.event_id = "e7a1b2c3d4e5f60718293a4b5c6d7e8f"
    r.created_time = 1732549999.5
    r.tenant_name = "openstack"
    write("request_fulfilled.json", r.serialize())

    # Exactly what Launcher.createMinReady() stores (event_id is a fresh
    # uuid4 hex in real life).
    r = request(zk.REQUESTED)
    r.requestor = "NodePool:min-ready"
    r.node_types.append("ubuntu-jammy")
    r.reuse = False
    r.event_id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    write("request_min_ready.json", r.serialize())

    # Zuul's submitNodeRequest(): NodeRequest.toDict() on a fresh request.
    zuul = {
        "requestor_data": {
            "build_set_uuid": "b5e0c8a1d2f34e56a7b8c9d0e1f2a3b4",
            "tenant_name": "example",
            "pipeline_name": "gate",
            "job_uuid": "0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4",
            "job_name": "linters",
            "span_info": None,
        },
        "node_types": ["debian-bookworm"],
        "requestor": ZUUL_SYSTEM,
        "created_time": 1732549998.0,
        "provider": None,
        "state": "requested",
        "state_time": 1732549998.0001,
        "relative_priority": 0,
        "event_id": "5c4b3a29180f7e6d5c4b3a29180f7e6d",
        "tenant_name": "example",
    }
    data = write_input("request_zuul_submitted", zuul)
    write("input/request_zuul_submitted.rewritten.json",
          zk.NodeRequest.fromDict(json.loads(data), "100-0000000007")
          .serialize())

    minimal = {"state": "pending", "state_time": 1732550002.5,
               "unknown": "dropped"}
    data = write_input("request_minimal", minimal)
    write("input/request_minimal.rewritten.json",
          zk.NodeRequest.fromDict(json.loads(data), "300-0000000001")
          .serialize())


def gen_images():
    b = zk.ImageBuild("ubuntu-jammy", BUILD_ID)
    b.state = zk.READY
    b.state_time = STATE_TIME
    b.builder = "nb01.example.com"
    b.builder_id = "f7a9c2e4-1b3d-4f5a-8c6e-0d2b4a6c8e0f"
    b.formats = ["raw", "qcow2", "vhd"]
    b.username = "ubuntu"
    b.python_path = "/usr/bin/python3"
    b.shell_type = "sh"
    write("build_ready.json", b.serialize())

    b = zk.ImageBuild("ubuntu-jammy", BUILD_ID)
    b.state = zk.FAILED
    b.state_time = 1732550100.0
    b.username = "zuul"
    b.python_path = "auto"
    write("build_failed.json", b.serialize())

    legacy = {"state": "ready", "state_time": 1600000000.0,
              "builder": "nb02", "formats": "qcow2"}
    data = write_input("build_legacy", legacy)
    write("input/build_legacy.rewritten.json",
          zk.ImageBuild.fromDict(json.loads(data), "img", "0000000012")
          .serialize())

    u = zk.ImageUpload(BUILD_ID, "rax-dfw", "ubuntu-jammy", "0000000001",
                       "ubuntu", "/usr/bin/python3", "bash")
    u.state = zk.READY
    u.state_time = STATE_TIME
    u.external_id = "9d8c7b6a-5f4e-3d2c-1b0a-f9e8d7c6b5a4"
    u.external_name = "ubuntu-jammy-1732550000"
    u.format = "vhd"
    write("upload_ready.json", u.serialize())

    u = zk.ImageUpload(BUILD_ID, "rax-dfw", "ubuntu-jammy", "0000000002")
    u.state = zk.UPLOADING
    u.state_time = 1732550200.0
    write("upload_uploading.json", u.serialize())

    legacy = {"state": "deleting", "state_time": 1600000000.0,
              "external_id": "ami-0123", "extra": 1}
    data = write_input("upload_legacy", legacy)
    write("input/upload_legacy.rewritten.json",
          zk.ImageUpload.fromDict(json.loads(data), BUILD_ID, "aws",
                                  "img", "0000000003").serialize())


def component_bytes(component):
    # BaseComponent.register() and __setattr__ both write exactly this.
    return json.dumps(component.content, sort_keys=True).encode("utf-8")


def gen_components():
    c = LauncherComponent(None, "np1.example.com", version="11.0.0")
    c.content["state"] = c.RUNNING
    write("component_launcher.json", component_bytes(c))

    c = BuilderComponent(None, "nb01.example.com", version="11.0.0")
    write("component_builder.json", component_bytes(c))

    c = PoolComponent(None, "np1.example.com", version="11.0.0")
    c.content.update({
        "id": POOL_WORKER,
        "name": "main",
        "provider_name": "rax-dfw",
        "supported_labels": ["ubuntu-jammy", "centos-9"],
        "state": c.RUNNING,
        "priority": 50,
        "paused": True,
    })
    write("component_pool.json", component_bytes(c))

    # A pool component from a newer writer with keys 11.0.0 does not know.
    # ComponentRegistry keeps them (content.update), so they survive.
    foreign = {"zeta": {"b": 1, "a": [{"y": 2, "x": 1}]}, "id": "w-1",
               "kind": "pool", "hostname": "np2", "state": "paused",
               "alpha": None, "version": "12.0.0", "model_api": 1,
               "supported_labels": ["a"], "name": "p", "provider_name": "x",
               "priority": 100, "paused": False}
    data = write_input("component_pool_extra", foreign)
    c = PoolComponent.fromDict(None, "np20000000003", json.loads(data))
    write("input/component_pool_extra.rewritten.json", component_bytes(c))

    # Only a state: every other key takes the class default; the hostname
    # default is the znode name the registry passes in.
    data = write_input("component_launcher_minimal", {"state": "running"})
    c = LauncherComponent.fromDict(None, "np30000000004", json.loads(data))
    write("input/component_launcher_minimal.rewritten.json",
          component_bytes(c))


def gen_python_json_cases():
    values = [
        1732550000.123456, 1732550000.0, 0.1, 1e16, 1e15,
        123456789012345680.0, 1e-05, 0.0001, -0.0, 0.0, 5e-324,
        1.7976931348623157e+308, 2.5e-07, 1e22, 12345678901234567.0,
        -1.5, 100.0, 3.0e-5, 9007199254740993.0, 1732550000.1234567,
        0, -1, 9223372036854775807, -9223372036854775808,
        18446744073709551615,
        "caf\u00e9 \u2615 \U0001F680", "\x7f\x00\x1f\t\n\r\b\f",
        "a\"b\\c/d", "\u2028\u2029\ufeff", "",
        True, False, None, [], {}, [[], {}], {"k": {"n": [1, 2.0, "x"]}},
    ]
    write("python_json_cases.json", json.dumps(values).encode("utf8"))


def gen_python_float_cases():
    """Floats of every magnitude plus epoch times, printed by repr()."""
    rng = random.Random(7)
    values = []
    while len(values) < 3000:
        bits = rng.getrandbits(64)
        value = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if value == value and abs(value) != float("inf"):
            values.append(value)
        values.append(round(rng.uniform(1.4e9, 1.8e9), rng.randint(0, 7)))
    # Exact ties in the last digit, which repr rounds to even.
    values += [-2131840612963129.25, 148906574030391.125,
               1685094889599744.25, 1685094889599744.75]
    write("python_float_cases.json", json.dumps(values).encode("utf8"))


def main():
    os.makedirs(os.path.join(HERE, "input"), exist_ok=True)
    gen_nodes()
    gen_hold_expiration_cases()
    gen_requests()
    gen_images()
    gen_components()
    gen_python_json_cases()
    gen_python_float_cases()
    print("golden files written to", HERE, file=sys.stderr)


if __name__ == "__main__":
    main()

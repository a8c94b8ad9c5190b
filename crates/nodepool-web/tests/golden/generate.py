#!/usr/bin/env python3
"""Write the golden status output with Nodepool 11.0.0's own code.

For each fixture (`fixture.json`, and `empty`: a store with nothing in it) this
builds Nodepool's model objects from the stored documents (`Node.fromDict`,
`NodeRequest.fromDict`, `ImageBuild.fromDict`, `ImageUpload.fromDict`), puts
them behind a stand-in for `nodepool.zk.zookeeper.ZooKeeper` (uncached, as the
CLI uses it) and saves what Nodepool prints:

* `<fixture>/cli/<command>.txt`: the stdout of `NodePoolCmd.<command>()`
  (`list`, `list --detail`, `list` of one node as `delete`/`hold` print it,
  `request-list`, `image-list`, `dib-image-list`, `image-status`,
  `info PROVIDER`);
* `<fixture>/web/<view>.txt` and `.json`: `status.output(status.<view>(zk),
  'pretty' | 'json')`, the webapp bodies.

`time.time()` is frozen at the fixture's `now`. `label-list` rows are put in
first-seen order (Nodepool's is a Python set's).

Needs the test venv (scripts/setup.sh), which has Nodepool's pinned
PrettyTable (0.7.2; else `pip install 'prettytable==0.7.2'`); run from this
folder:
    /var/tmp/nodepool-venv/bin/python generate.py
"""

import contextlib
import io
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


# nodepoolcmd imports the daemon and cloud machinery; none of it is used here.
class _Version:
    def release_string(self):
        return "11.0.0"

    def version_string(self):
        return "11.0.0"


stub("daemon")
stub("extras", try_import=lambda *a, **k: None,
     try_imports=lambda *a, **k: None)
stub("nodepool.version", version_info=_Version())
stub("nodepool.launcher")
stub("nodepool.provider_manager")
stub("nodepool.cmd.config_validator", ConfigValidator=object)

from nodepool import status  # noqa: E402
from nodepool.cmd.nodepoolcmd import NodePoolCmd  # noqa: E402
from nodepool.zk import zookeeper as zk  # noqa: E402


class Pool:
    def __init__(self, labels):
        self.supported_labels = labels


class FakeZooKeeper:
    """Answers the ZooKeeper methods status.py and nodepoolcmd.py call."""

    enable_cache = False

    def __init__(self, fixture):
        self.fixture = fixture
        self.images = {i["name"]: i for i in fixture["images"]}

    # nodes
    def _node(self, entry):
        return zk.Node.fromDict(entry["data"], entry["id"])

    def nodeIterator(self, cached=True, cached_ids=False):
        for entry in self.fixture["nodes"]:
            yield self._node(entry)

    def getNode(self, node_id, cached=False, only_cached=False):
        for entry in self.fixture["nodes"]:
            if entry["id"] == node_id:
                return self._node(entry)
        return None

    def getNodeLockContenders(self, node):
        for entry in self.fixture["nodes"]:
            if entry["id"] == node.id and entry["locked"]:
                return ["holder"]
        return []

    getProviderNodes = zk.ZooKeeper.getProviderNodes

    # requests
    def nodeRequestIterator(self, cached=True, cached_ids=False):
        for entry in sorted(self.fixture["requests"], key=lambda e: e["id"]):
            yield zk.NodeRequest.fromDict(entry["data"], entry["id"])

    # images
    def getImageNames(self):
        return sorted(self.images)

    def getImagePaused(self, image):
        return self.images[image]["paused"]

    def _builds(self, image):
        return self.images.get(image, {"builds": []})["builds"]

    def getBuildIds(self, image):
        return [b["id"] for b in self._builds(image)]

    def _build(self, image, build_id):
        for b in self._builds(image):
            if b["id"] == build_id:
                return b
        return None

    def getBuild(self, image, build_id):
        b = self._build(image, build_id)
        return b and zk.ImageBuild.fromDict(b["data"], image, build_id)

    def getBuildProviders(self, image, build_id):
        return sorted(self._build(image, build_id)["providers"])

    def getImageUploadNumbers(self, image, build_id, provider):
        return [u["id"] for u in
                self._build(image, build_id)["providers"].get(provider, [])]

    def getImageUpload(self, image, build_id, provider, upload_id):
        for u in self._build(image, build_id)["providers"].get(provider, []):
            if u["id"] == upload_id:
                return zk.ImageUpload.fromDict(
                    u["data"], build_id, provider, image, upload_id)
        return None

    def getUploads(self, image, build_id, provider, states=None):
        return [self.getImageUpload(image, build_id, provider, n)
                for n in self.getImageUploadNumbers(image, build_id,
                                                    provider)]

    getProviderUploads = zk.ZooKeeper.getProviderUploads

    def getBuildRequest(self, image):
        request = self.images[image]["build_request"]
        if request is None:
            return None
        return zk.ImageBuildRequest(image, request["pending"],
                                    request["created"])

    # components
    def getRegisteredPools(self):
        return [Pool(p["supported_labels"]) for p in self.fixture["pools"]]


def cli_output(zookeeper, method, **args):
    command = NodePoolCmd.__new__(NodePoolCmd)
    command.zk = zookeeper
    command.args = types.SimpleNamespace(**args)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if method == "list_one":
            command.list(node_id=args["id"])
        else:
            getattr(command, method)()
    return out.getvalue()


def write(path, text):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf8") as f:
        f.write(text)


def generate(name, fixture):
    time.time = lambda: fixture["now"]
    zookeeper = FakeZooKeeper(fixture)
    write(f"{name}/cli/list.txt", cli_output(zookeeper, "list", detail=False))
    write(f"{name}/cli/list-detail.txt",
          cli_output(zookeeper, "list", detail=True))
    for node_id in ["0000000002", "9999999999"]:
        write(f"{name}/cli/list-{node_id}.txt",
              cli_output(zookeeper, "list_one", id=node_id))
    for command in ["request_list", "image_list", "dib_image_list",
                    "image_status"]:
        write(f"{name}/cli/{command.replace('_', '-')}.txt",
              cli_output(zookeeper, command))
    for provider in fixture["info_providers"]:
        write(f"{name}/cli/info-{provider}.txt",
              cli_output(zookeeper, "info", provider=provider))

    views = {
        "node-list": status.node_list(zookeeper),
        "request-list": status.request_list(zookeeper),
        "image-list": status.image_list(zookeeper),
        "dib-image-list": status.dib_image_list(zookeeper),
        "image-status": status.image_status(zookeeper),
    }
    objs, headers = status.label_list(zookeeper)
    first_seen = []
    for pool in fixture["pools"]:
        for label in pool["supported_labels"]:
            if label not in first_seen:
                first_seen.append(label)
    objs.sort(key=lambda o: first_seen.index(o["label"]))
    views["label-list"] = (objs, headers)
    for view, results in views.items():
        write(f"{name}/web/{view}.txt", status.output(results, "pretty"))
        write(f"{name}/web/{view}.json", status.output(results, "json"))
    write(f"{name}/web/node-list-fields.txt",
          status.output(views["node-list"], "pretty",
                        ["locked", "id", "nonexistent", "connection_port"]))


def main():
    with open(os.path.join(HERE, "fixture.json"), encoding="utf8") as f:
        fixture = json.load(f)
    generate("full", fixture)
    generate("empty", {"now": fixture["now"], "nodes": [], "requests": [],
                       "images": [], "pools": [],
                       "info_providers": ["fake-provider"]})


main()

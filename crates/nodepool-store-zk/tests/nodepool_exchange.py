"""Reads and writes Nodepool records with Python Nodepool 11's own ZooKeeper code.

Usage: nodepool_exchange.py HOSTS CA CERT KEY write
         prints {"node", "request", "ephemeral_request", "build", "upload"} ids (image "debian",
         provider "p1")
       nodepool_exchange.py HOSTS CA CERT KEY read NODE REQUEST BUILD UPLOAD
         prints what Nodepool reads from those records, as JSON
"""
import json
import sys
import time

from nodepool.zk import ZooKeeperClient
from nodepool.zk import zookeeper as zk


def main():
    hosts, ca, cert, key, mode = sys.argv[1:6]
    client = ZooKeeperClient(hosts, tls_cert=cert, tls_key=key, tls_ca=ca)
    client.connect()
    store = zk.ZooKeeper(client, enable_cache=False)
    try:
        if mode == "write":
            node = zk.Node()
            node.state = zk.READY
            node.type = ["debian"]
            node.provider = "p1"
            node.pool = "main"
            node.external_id = "server-1"
            node.interface_ip = "192.0.2.10"
            node.connection_port = 22
            node.host_keys = ["ssh-rsa AAAA"]
            store.storeNode(node)
            request = zk.NodeRequest()
            request.state = zk.REQUESTED
            request.node_types = ["debian", "debian"]
            request.requestor = "zuul-system"
            request.relative_priority = 3
            # Nodepool's own requests are ephemeral: this one goes when we disconnect.
            store.storeNodeRequest(request, priority="900")
            ephemeral_id = request.id
            # Zuul submits persistent sequential requests with the same JSON.
            path = client.client.create(
                "/nodepool/requests/200-", json.dumps(request.toDict()).encode("utf8"),
                sequence=True, makepath=True)
            request.id = path.rsplit("/", 1)[1]
            build = zk.ImageBuild()
            build.state = zk.READY
            build.builder = "builder.example.com"
            build.formats = ["qcow2", "raw"]
            build_id = store.storeBuild("debian", build)
            upload = zk.ImageUpload()
            upload.state = zk.READY
            upload.external_id = "image-1"
            upload.external_name = "debian-123"
            upload.format = "qcow2"
            upload_id = store.storeImageUpload("debian", build_id, "p1", upload)
            print(json.dumps({"node": node.id, "request": request.id, "ephemeral_request": ephemeral_id, "build": build_id, "upload": upload_id}))
        elif mode == "read":
            node_id, request_id, build_id, upload_id = sys.argv[6:10]
            node = store.getNode(node_id)
            request = store.getNodeRequest(request_id)
            build = store.getBuild("debian", build_id)
            upload = store.getImageUpload("debian", build_id, "p1", upload_id)
            print(json.dumps({
                "node": {"state": node.state, "type": node.type, "provider": node.provider,
                         "allocated_to": node.allocated_to, "connection_port": node.connection_port,
                         "host_keys": node.host_keys, "created_time": node.created_time,
                         "username": node.username},
                "request": {"state": request.state, "node_types": request.node_types,
                            "nodes": request.nodes, "requestor": request.requestor,
                            "relative_priority": request.relative_priority,
                            "reuse": request.reuse},
                "build": {"state": build.state, "formats": build.formats, "builder": build.builder},
                "upload": {"state": upload.state, "external_id": upload.external_id,
                           "format": upload.format},
            }))
        else:
            raise SystemExit("unknown mode %s" % mode)
    finally:
        client.disconnect()


if __name__ == "__main__":
    main()

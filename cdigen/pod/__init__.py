"""The pod's network: what its networking wrote down about each network, merged and matched to
a host device, and turned into what a runtime reads (docs/vm.md).

sources: annotations.py (network-status, pod-networks, the CRI sandbox id), devinfo.py
(device-info documents and files), cniresult.py (libcni's result cache), read through
fields.py into model.py's records; merge.py (one precedence); host.py (sysfs under a root);
network.py (all of it, and the netdev settings `apply` takes); dan.py (Kata's DAN file);
cnirecord.py (the CNI plugin's record) and cni.py (the CNI plugin's ADD, DEL, CHECK, VERSION).

Empty on purpose: the CNI plugin imports cni.py and cnirecord.py, and nothing else here.
"""

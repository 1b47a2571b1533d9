# netctl: the two commands are `make demo` and `make test`; both run `make setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := openvswitch-switch openvswitch-common mininet iperf3 tcpdump iputils-ping \
	ndisc6 ethtool iproute2 iputils-arping python3-venv python3-openvswitch procps \
	python3-cryptography openssl etcd-server \
	chromium chromium-driver nfdump
PYTEST_ARGS ?=

.PHONY: setup deb demo test lint clean-venv

setup: deb .stamp-venv

# Debian packages (idempotent: checks every time, installs only what is missing).
# etcd-server gives /usr/bin/etcd (3.4): the coordination tests start their own members on
# free loopback ports (netctl/lab/etcd.py); the package's own service is not used.
# nfdump gives nfcapd, the NetFlow/IPFIX collector the flow export tests start in a lab host
# (tests/lab/test_export.py); its own service is not used either.
deb:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# The venv sees Debian's Mininet and python3-openvswitch (system site packages).
.stamp-venv: pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,experiments]'
	@touch $@

demo: setup
	$(VENV)/bin/netctl demo topologies/demo-pool.yaml

test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV) .stamp-venv

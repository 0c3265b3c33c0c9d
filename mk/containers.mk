# The image and compose file on real containers (docs/contract/deployment.md).
#   make test-containers   base images (tests/containers/base-images.sh, once per
#                          machine), the server, agent and PostgreSQL images, then
#                          tests/containers against `docker-compose up`: the compose
#                          file as it is (test_compose.py), and two https replicas,
#                          PostgreSQL and three agents through faults (test_fleet.py)
# `make test` runs it when `docker info` answers (an engine to talk to).
.PHONY: test-containers container-images

DOCKER_WORKS := $(shell docker info >/dev/null 2>&1 && echo yes)
CONTAINER_SUITES := $(if $(DOCKER_WORKS),test-containers)

# Docker's layer cache keeps what did not change: a run with the same sources
# builds nothing. Superseded layers of ours are pruned (label), nobody else's.
container-images:
	@command -v docker-compose >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y docker-compose || { apt-get update && apt-get install -y docker-compose; }; }
	bash tests/containers/base-images.sh
	@# The build stage tagged: the layer cache of the Rust build survives the prune.
	docker build -q -t actionq-build:latest --target build . >/dev/null
	docker build -q -t actionq-server:latest --target server . >/dev/null
	docker build -q -t actionq-agent:latest --target agent . >/dev/null
	docker build -q -t actionq-postgres:15 tests/containers/postgres >/dev/null
	docker image prune -f --filter label=io.actionq.image >/dev/null
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^actionq-' | sort

test-containers: python-develop container-images
	mkdir -p target/containers
	ACTIONQ_CONTAINER_LOGS=$(CURDIR)/target/containers $(VPY) -m pytest -p no:cacheprovider -s -v tests/containers

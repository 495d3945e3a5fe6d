# The localbox server's own image. `make server-image` builds it: it first collects the
# Python wheels on the host (build/wheels), so the image builds without network access, on
# the same Debian base the sandbox image uses (bootstrapped when it cannot be pulled).
# Without build/wheels, `docker build .` installs from the package index instead.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

COPY . /src
RUN python3 -m venv /opt/localbox \
 && if [ -d /src/build/wheels ]; then \
      /opt/localbox/bin/pip install --no-cache-dir --no-index --find-links /src/build/wheels localbox; \
    else \
      /opt/localbox/bin/pip install --no-cache-dir /src; \
    fi \
 && rm -rf /src

# In a container the server must listen on all its interfaces; it refuses to without
# LOCALBOX_API_KEYS, which compose.yaml therefore requires.
ENV PATH=/opt/localbox/bin:$PATH LOCALBOX_HOST=0.0.0.0 LOCALBOX_PORT=8000 LOCALBOX_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["localbox"]

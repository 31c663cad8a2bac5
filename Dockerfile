# The isobridge image: the hub (`isobridge`) and the mainframe simulator (`python -m mainframe_sim`).
FROM python:3.11-slim
WORKDIR /opt/isobridge
COPY pyproject.toml README.md ./
COPY canonical_model canonical_model
COPY adapters adapters
COPY routing routing
COPY vault vault
COPY hub hub
COPY mainframe_sim mainframe_sim
RUN pip install --no-cache-dir . && useradd --system --home-dir /var/lib/isobridge isobridge \
    && mkdir -p /var/lib/isobridge && chown isobridge /var/lib/isobridge
USER isobridge
ENV ISOBRIDGE_HOME=/var/lib/isobridge
EXPOSE 8583 7070 7071
CMD ["isobridge", "run", "--config", "/etc/isobridge/hub.toml"]

# Hugging Face Space (Docker template) or any container host: `docker build -t vlmlab . && docker run -p 8501:8501 vlmlab`
FROM python:3.11-slim

COPY packages.txt /tmp/packages.txt
RUN apt-get update \
 && xargs -a /tmp/packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*

# Spaces run the container as user 1000; give it a home and writable data folders.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    VLMLAB_RUNS_ROOT=/home/user/app/runs VLMLAB_DATA_DIR=/home/user/app/.vlmlab
# glibc makes up to 8 malloc arenas per core, one per allocating thread, and keeps freed memory in each:
# every visitor session is a thread, so freed upload and decode buffers piled up as resident memory
# (2 arenas: 360 MiB less at peak under an uploading client, bench/RESULTS.md, issue 30).
ENV MALLOC_ARENA_MAX=2
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
COPY --chown=user . .

# The demo run is built into the image (a few minutes on 2 vCPU), so the Space opens on a real run.
RUN python -m dashboard demo --out runs/demo

EXPOSE 8501
# Behind the Space's proxy, uploads need XSRF off (the proxy is on another origin).
CMD ["streamlit", "run", "Home.py", "--server.port", "8501", "--server.address", "0.0.0.0", \
     "--server.enableXsrfProtection", "false", "--server.enableCORS", "false"]

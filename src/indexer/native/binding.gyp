# Builds clip_indexer.node (see addon.c): zran.c against the system zlib, zstd.c against libzstd,
# sha256.c against the OpenSSL inside node. Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_indexer",
      "sources": ["addon.c", "async_job.c", "zran.c", "zstd.c", "sha256.c"],
      "include_dirs": ["../../native"],
      "libraries": ["-lz", "-lzstd"],
      "cflags": ["-Wall", "-Wextra", "-std=c11"]
    }
  ]
}

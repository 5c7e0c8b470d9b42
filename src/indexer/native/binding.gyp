# Builds clip_indexer.node (see addon.c): zran.c against the system zlib, sha256.c against the OpenSSL
# inside node. Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_indexer",
      "sources": ["addon.c", "async_job.c", "zran.c", "sha256.c"],
      "include_dirs": ["../../native"],
      "libraries": ["-lz"],
      "cflags": ["-Wall", "-Wextra", "-std=c11"]
    }
  ]
}

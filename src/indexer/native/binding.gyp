# Builds clip_zran.node (see zran.c) against the system zlib. Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_zran",
      "sources": ["zran.c"],
      "include_dirs": ["../../native"],
      "libraries": ["-lz"],
      "cflags": ["-Wall", "-Wextra", "-std=c11"]
    }
  ]
}

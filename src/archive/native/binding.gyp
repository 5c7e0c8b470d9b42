# Builds clip_archive.node (layer_table_js.c): an archive body's entries checked and decoded into the table
# the FUSE server answers from (layer_table.c, plain C, no libraries). Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_archive",
      "sources": ["layer_table.c", "layer_table_js.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11", "-O2"]
    }
  ]
}

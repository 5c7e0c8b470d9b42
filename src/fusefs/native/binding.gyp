# Builds clip_fuse.node (see clip_fuse.c) against the system libfuse3. Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_fuse",
      "sources": ["clip_fuse.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}

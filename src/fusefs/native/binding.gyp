# Builds, against the system libfuse3, clip_fuse.node (the FUSE layer server, clip_fuse.c); and, without
# libfuse, clip_handoff.node (fd passing, sd_notify, flock: handoff.c) and the clip-fd-holder program
# (clip_fd_holder.c). Run by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "clip_fuse",
      "sources": ["clip_fuse.c", "fuse_stats.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    },
    {
      "target_name": "clip_handoff",
      "sources": ["handoff.c"],
      "include_dirs": ["../../native"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11"]
    },
    {
      "target_name": "clip-fd-holder",
      "type": "executable",
      "sources": ["clip_fd_holder.c"],
      "cflags": ["-Wall", "-Wextra", "-std=gnu11", "-O2"]
    }
  ]
}

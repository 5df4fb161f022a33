{
  "targets": [
    {
      "target_name": "flock",
      "sources": ["flock.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}

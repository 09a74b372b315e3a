/*
 * A small libnfs client for the NFS adapter's integration tests: the calls nfs-ls/nfs-cat/nfs-cp do
 * not make. Usage: nfs-client URL CMD ARGS... [CMD ARGS...]
 *   URL: nfs://127.0.0.1/EXPORT?nfsport=P&mountport=P&version=3[&uid=U&gid=G]
 *   mkdir P | rmdir P | rename A B | creat P MODE | write P OFF TEXT | truncate P SIZE | stat P
 *   cat P | statvfs | count P | fsyncwrite P BYTES | sparse P OFF | hold P
 * Build: gcc -O1 -o nfs-client nfs-client.c $(pkg-config --cflags --libs libnfs)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <nfsc/libnfs.h>

static struct nfs_context *nfs;

static void die(const char *what, int rc) {
  printf("ERR %s: %d %s\n", what, rc, nfs_get_error(nfs));
  fflush(stdout);
  exit(1);
}

static struct nfsfh *open_or_die(const char *p, int flags) {
  struct nfsfh *fh = NULL;
  int rc = nfs_open(nfs, p, flags, &fh);
  if (rc < 0) die("open", rc);
  return fh;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s URL CMD ARGS...\n", argv[0]);
    return 2;
  }
  nfs = nfs_init_context();
  if (nfs == NULL) return 3;
  struct nfs_url *url = nfs_parse_url_dir(nfs, argv[1]);
  if (url == NULL) die("parse_url", -1);
  int rc = nfs_mount(nfs, url->server, url->path);
  if (rc < 0) die("mount", rc);
  int i = 2;
  while (i < argc) {
    const char *cmd = argv[i++];
    if (!strcmp(cmd, "mkdir")) {
      if ((rc = nfs_mkdir(nfs, argv[i++])) < 0) die("mkdir", rc);
      printf("mkdir ok\n");
    } else if (!strcmp(cmd, "rmdir")) {
      if ((rc = nfs_rmdir(nfs, argv[i++])) < 0) die("rmdir", rc);
      printf("rmdir ok\n");
    } else if (!strcmp(cmd, "rename")) {
      const char *a = argv[i++];
      const char *b = argv[i++];
      if ((rc = nfs_rename(nfs, a, b)) < 0) die("rename", rc);
      printf("rename ok\n");
    } else if (!strcmp(cmd, "creat")) {
      const char *p = argv[i++];
      int mode = (int)strtol(argv[i++], NULL, 8);
      struct nfsfh *fh = NULL;
      if ((rc = nfs_creat(nfs, p, mode, &fh)) < 0) die("creat", rc);
      nfs_close(nfs, fh);
      printf("creat ok\n");
    } else if (!strcmp(cmd, "write")) {
      const char *p = argv[i++];
      uint64_t off = strtoull(argv[i++], NULL, 10);
      const char *text = argv[i++];
      struct nfsfh *fh = open_or_die(p, O_WRONLY | O_CREAT);
      if ((rc = nfs_pwrite(nfs, fh, off, strlen(text), text)) < 0) die("pwrite", rc);
      nfs_close(nfs, fh);
      printf("write ok %d\n", rc);
    } else if (!strcmp(cmd, "truncate")) {
      const char *p = argv[i++];
      uint64_t size = strtoull(argv[i++], NULL, 10);
      if ((rc = nfs_truncate(nfs, p, size)) < 0) die("truncate", rc);
      printf("truncate ok\n");
    } else if (!strcmp(cmd, "stat")) {
      struct nfs_stat_64 st;
      if ((rc = nfs_stat64(nfs, argv[i++], &st)) < 0) die("stat", rc);
      printf("size=%" PRIu64 " mode=%o uid=%" PRIu64 " gid=%" PRIu64 "\n", (uint64_t)st.nfs_size,
             (unsigned)(st.nfs_mode & 07777), (uint64_t)st.nfs_uid, (uint64_t)st.nfs_gid);
    } else if (!strcmp(cmd, "cat")) {
      struct nfsfh *fh = open_or_die(argv[i++], O_RDONLY);
      char buf[65536];
      uint64_t off = 0;
      for (;;) {
        rc = nfs_pread(nfs, fh, off, sizeof(buf), buf);
        if (rc < 0) die("pread", rc);
        if (rc == 0) break;
        fwrite(buf, 1, rc, stdout);
        off += rc;
      }
      nfs_close(nfs, fh);
      printf("\n");
    } else if (!strcmp(cmd, "statvfs")) {
      struct nfs_statvfs_64 sv;
      if ((rc = nfs_statvfs64(nfs, "/", &sv)) < 0) die("statvfs", rc);
      printf("bsize=%" PRIu64 " blocks=%" PRIu64 " bfree=%" PRIu64 " files=%" PRIu64 " namemax=%" PRIu64 "\n",
             (uint64_t)sv.f_bsize, (uint64_t)sv.f_blocks, (uint64_t)sv.f_bfree, (uint64_t)sv.f_files,
             (uint64_t)sv.f_namemax);
    } else if (!strcmp(cmd, "count")) {
      struct nfsdir *dir = NULL;
      if ((rc = nfs_opendir(nfs, argv[i++], &dir)) < 0) die("opendir", rc);
      struct nfsdirent *e;
      long n = 0;
      unsigned long long sum = 0;
      while ((e = nfs_readdir(nfs, dir)) != NULL) {
        if (!strcmp(e->name, ".") || !strcmp(e->name, "..")) continue;
        n++;
        sum += strlen(e->name);
      }
      nfs_closedir(nfs, dir);
      printf("count=%ld namebytes=%llu\n", n, sum);
    } else if (!strcmp(cmd, "fsyncwrite")) {
      const char *p = argv[i++];
      uint64_t total = strtoull(argv[i++], NULL, 10);
      struct nfsfh *fh = open_or_die(p, O_WRONLY | O_CREAT | O_TRUNC);
      static char buf[65536];
      for (size_t k = 0; k < sizeof(buf); k++) buf[k] = (char)('a' + k % 26);
      uint64_t off = 0;
      while (off < total) {
        uint64_t n = total - off < sizeof(buf) ? total - off : sizeof(buf);
        if ((rc = nfs_pwrite(nfs, fh, off, n, buf)) < 0) die("pwrite", rc);
        off += rc;
      }
      if ((rc = nfs_fsync(nfs, fh)) < 0) die("fsync", rc);
      nfs_close(nfs, fh);
      printf("fsync ok %" PRIu64 "\n", off);
    } else if (!strcmp(cmd, "sparse")) {
      const char *p = argv[i++];
      uint64_t off = strtoull(argv[i++], NULL, 10);
      struct nfsfh *fh = open_or_die(p, O_RDWR | O_CREAT);
      if ((rc = nfs_pwrite(nfs, fh, off, 1, "Z")) < 0) die("pwrite", rc);
      if ((rc = nfs_pwrite(nfs, fh, 0, 1, "A")) < 0) die("pwrite", rc);
      static char buf[65536];
      uint64_t pos = 0;
      int bad = 0;
      while (pos <= off) {
        rc = nfs_pread(nfs, fh, pos, sizeof(buf), buf);
        if (rc <= 0) die("pread", rc);
        for (int k = 0; k < rc; k++) {
          uint64_t at = pos + k;
          char want = at == 0 ? 'A' : at == off ? 'Z' : 0;
          if (buf[k] != want) bad++;
        }
        pos += rc;
      }
      nfs_close(nfs, fh);
      printf("sparse size=%" PRIu64 " bad=%d\n", pos, bad);
    } else if (!strcmp(cmd, "hold")) {
      struct nfsfh *fh = open_or_die(argv[i++], O_RDONLY);
      char buf[17] = {0};
      if ((rc = nfs_pread(nfs, fh, 0, 16, buf)) < 0) die("pread", rc);
      printf("before=%s\n", buf);
      fflush(stdout);
      char line[64];
      if (fgets(line, sizeof(line), stdin) == NULL) die("stdin", -1);
      memset(buf, 0, sizeof(buf));
      if ((rc = nfs_pread(nfs, fh, 0, 16, buf)) < 0) die("pread after restart", rc);
      printf("after=%s\n", buf);
      nfs_close(nfs, fh);
    } else {
      fprintf(stderr, "unknown command %s\n", cmd);
      return 2;
    }
    fflush(stdout);
  }
  nfs_destroy_url(url);
  nfs_destroy_context(nfs);
  return 0;
}

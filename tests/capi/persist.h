/*
 * persist.h — helpers for the tests of persistent engines (C11 + POSIX). Include it
 * before anything else: it asks for the POSIX declarations before any system header.
 *
 *   make_tmpdir(buf, n)   creates a fresh directory under $TMPDIR (or /tmp), or aborts;
 *   remove_tree(path)     deletes a directory and everything under it;
 *   persons_text(e)       everything a host can read about every person, as one
 *                         malloc'd string: all pages of cdp_persons_page, then
 *                         cdp_person_get of each person listed. Two engines hold the same
 *                         persons exactly when these strings are equal. NULL on failure.
 */
#ifndef CDP_PERSIST_H
#define CDP_PERSIST_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdp.h"

static inline void make_tmpdir(char *buf, size_t n) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, n, "%s/cdp-capi-XXXXXX", base && *base ? base : "/tmp");
  if (mkdtemp(buf) == NULL) {
    perror("mkdtemp");
    abort();
  }
}

static inline void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
      if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
      size_t n = strlen(path) + strlen(ent->d_name) + 2;
      char *file = malloc(n);
      if (!file) abort();
      snprintf(file, n, "%s/%s", path, ent->d_name);
      if (unlink(file) != 0) remove_tree(file); /* a subdirectory */
      free(file);
    }
    closedir(d);
  }
  rmdir(path);
}

/* A growing string. */
typedef struct text {
  char *p;
  size_t n, cap;
} text;

static inline void text_add(text *t, const char *s, size_t n) {
  if (t->n + n + 1 > t->cap) {
    t->cap = (t->n + n + 1) * 2;
    t->p = realloc(t->p, t->cap);
    if (!t->p) abort();
  }
  memcpy(t->p + t->n, s, n);
  t->n += n;
  t->p[t->n] = '\0';
}

static inline char *persons_text(cdp_engine *e) {
  text t = {NULL, 0, 0};
  text ids = {NULL, 0, 0}; /* the OneIDs listed, as uint64_t */
  cdp_buf page = CDP_BUF_INIT;
  uint64_t cursor = 0;
  do {
    if (cdp_persons_page(&page, e, cursor, 97, 0) != CDP_OK) goto fail;
    text_add(&t, page.ptr, page.size);
    const char *key = "{\"oneid\":";
    for (const char *p = strstr(page.ptr, key); p; p = strstr(p + 1, key)) {
      uint64_t id = strtoull(p + strlen(key), NULL, 10);
      text_add(&ids, (const char *)&id, sizeof id);
    }
    const char *next = strstr(page.ptr, "\"next\":");
    if (!next) goto fail;
    cursor = strtoull(next + 7, NULL, 10);
  } while (cursor != 0);
  for (size_t i = 0; i < ids.n / sizeof(uint64_t); i++) {
    uint64_t id;
    memcpy(&id, ids.p + i * sizeof id, sizeof id);
    if (cdp_person_get(&page, e, id, 0) != CDP_OK) goto fail;
    text_add(&t, page.ptr, page.size);
  }
  cdp_buf_free(&page);
  free(ids.p);
  if (!t.p) text_add(&t, "", 0);
  return t.p;
fail:
  cdp_buf_free(&page);
  free(ids.p);
  free(t.p);
  return NULL;
}

#endif /* CDP_PERSIST_H */

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make series: our tree as a git format-patch series against the base.

series/NN-*.txt (or NNa-*.txt, NNb-*.txt... to split a patch without
renumbering the others) describe the patches in review order: a commit
message, a line "---", then the paths that patch adds (files of ours,
directories of ours ending in "/", or patches/*.patch, which edit base
files).  Every file of ours and every patch in patches/series must be in
exactly one of them.  series/00-cover-letter.txt is the cover letter
(first line its subject; @BENCH@ becomes README.md's benchmark table).

MAINTAINERS grows with the series: each patch adds the entry's F: lines
for the files it adds, so no patch adds files without saying who looks
after them.

Writes out/series/*.patch, runs checkpatch --strict on each, and unless
--no-build builds the fast kernel after every patch that changes
kernel code (out/series/src, out/series/build-fast: laid out like
out/src and out/build-fast, so ccache serves what did not change).
Exits non-zero on any finding or build failure.
"""
import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, 'out')
SER = os.path.join(OUT, 'series')
TREE_DIRS = ('Documentation', 'arch', 'drivers', 'fs', 'include', 'kernel',
             'lib', 'mm', 'samples', 'scripts', 'tools')
# Files only userspace or the docs build read: no kernel build needed.
NO_KERNEL = re.compile(r'^(tools/|Documentation/|MAINTAINERS$)')


def run(cmd, **kw):
    kw.setdefault('check', True)
    return subprocess.run(cmd, **kw)


def git(*args, capture=False):
    r = run(['git', '-C', os.path.join(SER, 'git')] + list(args),
            capture_output=capture, text=True)
    return r.stdout if capture else None


def read_specs():
    specs = []
    d = os.path.join(REPO, 'series')
    for name in sorted(os.listdir(d)):
        if not re.match(r'^\d\d[a-z]?-.*\.txt$', name):
            continue
        text = open(os.path.join(d, name)).read()
        if name.startswith('00-'):
            cover = text
            continue
        msg, sep, paths = text.partition('\n---\n')
        if not sep:
            sys.exit(f'series/{name}: no "---" line before the paths')
        specs.append((name, msg.strip() + '\n', paths.split()))
    return cover, specs


def our_files():
    """What assemble.sh installs: every file under the tree's directories."""
    out = []
    for d in TREE_DIRS:
        for root, _, names in os.walk(os.path.join(REPO, d)):
            out += [os.path.relpath(os.path.join(root, n), REPO)
                    for n in names
                    if not n.endswith(('.orig', '.rej', '~'))]
    return sorted(out)


def patch_targets(p):
    return re.findall(r'^\+\+\+ b/(\S+)', open(os.path.join(REPO, p)).read(),
                      re.M)


def sections(p):
    """A plain diff split by file: {path: its part of the diff}."""
    text = open(os.path.join(REPO, p)).read()
    parts = {}
    for part in re.split(r'(?m)^(?=--- a/)', text):
        m = re.match(r'--- a/(\S+)', part)
        if m:
            parts[m.group(1)] = part
    return parts


def resolve(specs):
    """Per spec: (our files, patches).  Checks that each is used once."""
    ours = our_files()
    applied = [os.path.join('patches', line.strip())
               for line in open(os.path.join(REPO, 'patches/series'))
               if line.strip() and not line.startswith('#')]
    seen = {}
    steps = []
    for name, msg, paths in specs:
        files, patches = [], []
        for p in paths:
            if p.startswith('patches/'):
                if p not in applied:
                    sys.exit(f'series/{name}: {p} is not in patches/series')
                got = [p]
                patches.append(p)
            elif p.endswith('/'):
                got = [f for f in ours if f.startswith(p)]
                files += got
            else:
                got = [p] if p in ours else []
                files += got
            if not got:
                sys.exit(f'series/{name}: {p}: no such file of ours')
            for f in got:
                if f in seen:
                    sys.exit(f'{f} is in both series/{seen[f]} and '
                             f'series/{name}')
                seen[f] = name
        steps.append((name, msg, files, patches))
    missing = [f for f in ours + applied if f not in seen]
    if missing:
        sys.exit('not in any patch of series/: ' + ' '.join(missing))
    order = [p for s in steps for p in s[3]]
    if order != [p for p in applied if p in order]:
        sys.exit('series/ uses patches/ in another order than patches/series')
    return steps


def copy_over(src, dst):
    """Replace dst by a copy of src (never writing through a hard link)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copy2(src, dst)


def maintainers_entry(base, final):
    """The lines the series adds to MAINTAINERS, and where."""
    a, b = base.splitlines(True), final.splitlines(True)
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    added = len(b) - len(a)
    if added < 0 or a[i:] != b[i + added:]:
        sys.exit('MAINTAINERS: the series must only insert one block')
    return i, b[i:i + added]


def covered(pat, f):
    """Does MAINTAINERS pattern @pat (F: or X:) cover file @f?"""
    if pat.endswith('/'):
        return f.startswith(pat)
    return fnmatch.fnmatch(f, pat)


def entry_covers(lines, f):
    pats = [(ln[:2], ln[3:].strip()) for ln in lines if ln[:3] in ('F:\t',
                                                                'X:\t')]
    return (any(covered(p, f) for k, p in pats if k == 'F:') and
            not any(covered(p, f) for k, p in pats if k == 'X:'))


def maintainers_at(base, at, entry, present):
    """MAINTAINERS with the entry's F: (and X:) lines for @present files."""
    def wanted(ln):
        if ln.startswith('F:\t'):
            return any(entry_covers([ln] + xs, f) for f in present)
        if ln.startswith('X:\t'):
            return any(covered(f[3:].strip(), ln[3:].strip())
                       for f in kept_f)
        return True
    xs = [ln for ln in entry if ln.startswith('X:\t')]
    kept_f = [ln for ln in entry if ln.startswith('F:\t') and wanted(ln)]
    if not kept_f:
        return base, []
    lines = [ln for ln in entry if wanted(ln)]
    a = base.splitlines(True)
    return ''.join(a[:at] + lines + a[at:]), lines


def build_series(base, steps, cover, ident):
    if os.path.exists(SER):
        shutil.rmtree(SER)
    work = os.path.join(SER, 'git')
    os.makedirs(work)
    touched = sorted({t for s in steps for p in s[3] for t in patch_targets(p)}
                     | {'MAINTAINERS'})
    for f in touched:
        if os.path.exists(os.path.join(base, f)):
            copy_over(os.path.join(base, f), os.path.join(work, f))
    env = dict(os.environ, GIT_AUTHOR_NAME=ident[0], GIT_AUTHOR_EMAIL=ident[1],
               GIT_COMMITTER_NAME=ident[0], GIT_COMMITTER_EMAIL=ident[1],
               GIT_AUTHOR_DATE='2026-01-01T00:00:00Z',
               GIT_COMMITTER_DATE='2026-01-01T00:00:00Z')

    def git_env(*a):
        return run(['git', '-C', work] + list(a), env=env,
                   capture_output=True, text=True)
    git_env('init', '-q')
    git_env('add', '-A')
    git_env('commit', '-q', '-m', 'base: Linux 7.2.11 (Debian), upstream LUO '
            'removed')

    # The final MAINTAINERS, to find the entry the series adds.
    tmp = os.path.join(SER, 'maint')
    os.makedirs(tmp)
    copy_over(os.path.join(base, 'MAINTAINERS'), os.path.join(tmp, 'MAINTAINERS'))
    for s in steps:
        for p in s[3]:
            part = sections(p).get('MAINTAINERS')
            if part:
                run(['patch', '-s', '-p1', '-F0', '-d', tmp], input=part,
                    text=True)
    base_m = open(os.path.join(base, 'MAINTAINERS')).read()
    at, entry = maintainers_entry(base_m,
                                  open(os.path.join(tmp, 'MAINTAINERS')).read())
    shutil.rmtree(tmp)

    present = []
    uncovered = {}
    for n, (name, msg, files, patches) in enumerate(steps, 1):
        for f in files:
            copy_over(os.path.join(REPO, f), os.path.join(work, f))
        for p in patches:
            # MAINTAINERS is written below, for every patch.
            parts = sections(p)
            body = ''.join(v for k, v in parts.items() if k != 'MAINTAINERS')
            if body:
                run(['patch', '-s', '-p1', '-F0', '-N',
                     '--no-backup-if-mismatch', '-d', work], input=body,
                    text=True)
            present += patch_targets(p)
        present += files
        text, lines = maintainers_at(base_m, at, entry, present)
        with open(os.path.join(work, 'MAINTAINERS'), 'w') as fh:
            fh.write(text)
        uncovered[n] = [f for f in files + [t for p in patches
                                            for t in patch_targets(p)]
                        if not os.path.exists(os.path.join(base, f)) and
                        not entry_covers(lines, f)]
        git_env('add', '-A')
        run(['git', '-C', work, 'commit', '-q', '-s', '-F', '-'], input=msg,
            env=env, text=True)
    # The series must add up to the tree every test runs on.
    differ = [f for f in git('ls-files', capture=True).split()
              if not os.path.exists(os.path.join(OUT, 'src', f)) or
              open(os.path.join(work, f), 'rb').read() !=
              open(os.path.join(OUT, 'src', f), 'rb').read()]
    if differ:
        sys.exit('series: differs from out/src (run make assemble): ' +
                 ' '.join(differ))
    first = git('rev-list', '--max-parents=0', 'HEAD', capture=True).strip()
    run(['git', '-C', work, 'format-patch', '-q', '--cover-letter',
         '--no-signature', '-o', SER, f'{first}..HEAD'], env=env)

    # Fill in the cover letter.
    bench = bench_table()
    title, _, body = cover.partition('\n')
    body = body.strip().replace('@BENCH@', bench) + '\n'
    path = os.path.join(SER, '0000-cover-letter.patch')
    text = open(path).read()
    text = text.replace('*** SUBJECT HERE ***', title.strip())
    text = text.replace('*** BLURB HERE ***', body.rstrip('\n'))
    open(path, 'w').write(text)
    return (sorted(f for f in os.listdir(SER) if f.endswith('.patch')),
            uncovered)


def bench_table():
    readme = open(os.path.join(REPO, 'README.md')).read()
    m = re.search(r'^\| scenario \| metric .*?(?=\n\n)', readme, re.M | re.S)
    return m.group(0) if m else '(see README.md)'


def checkpatch(patches, uncovered):
    """checkpatch --strict on every patch; returns how many have findings.

    Two kinds of finding are the tool's limits, not the patch's:
    TRACE_EVENT() layout in trace headers (as in make lint), and
    FILE_PATH_CHANGES for a new file that the MAINTAINERS entry already
    covers through a directory pattern.
    """
    cp = os.path.join(OUT, 'src', 'scripts', 'checkpatch.pl')
    bad = 0
    for n, p in enumerate(patches):
        if p.startswith('0000-'):
            continue
        path = os.path.join(SER, p)
        # Which file each line of the patch belongs to.
        owner, cur = [], None
        for ln in open(path):
            m = re.match(r'^\+\+\+ b/(\S+)', ln)
            if m:
                cur = m.group(1)
            owner.append(cur)
        # CAMELCASE: the base tree's own names (labels such as Unlock).
        r = run([cp, '--strict', '--no-tree', '--terse', '--show-types',
                 '--ignore=CAMELCASE', path],
                check=False, capture_output=True, text=True)
        found = []
        for ln in r.stdout.splitlines():
            m = re.match(r'^[^:]+:(\d+): \w+:(\w+):', ln)
            if ln.startswith('total: '):
                continue
            if m:
                f = owner[int(m.group(1)) - 1] or ''
                if (f.startswith('include/trace/') and m.group(2) in
                        ('PARENTHESIS_ALIGNMENT', 'OPEN_ENDED_LINE')):
                    continue
                if m.group(2) == 'FILE_PATH_CHANGES' and not uncovered[n]:
                    continue
                # Userspace: the same exceptions as make lint (lint.sh).
                if f.startswith('tools/') and m.group(2) in (
                        'ENOSYS', 'LONG_LINE_STRING', 'VOLATILE'):
                    continue
                if (f == 'tools/liveupdate/tools.h' and
                        m.group(2) == 'PREFER_DEFINED_ATTRIBUTE_MACRO'):
                    continue
            found.append(ln)
        if found:
            bad += 1
            print(f'series: checkpatch {p}: {len(found)} finding(s)')
            for ln in found:
                print('  ' + ln.replace(SER + '/', ''))
        else:
            print(f'series: checkpatch {p}: clean')
    return bad


# Options of the fast kernel the bisect builds leave out (see below).
SERIES_OFF = ['PCI', 'IOMMU_SUPPORT', 'IOMMUFD', 'VFIO']


def bisect_build(base, patches):
    """Build the fast kernel after each patch that touches kernel code."""
    src = os.path.join(SER, 'src')
    bld = os.path.join(SER, 'build-fast')
    config = os.path.join(OUT, 'build-fast', '.config')
    if not os.path.exists(config):
        sys.exit('series: no out/build-fast/.config: run make kernel first')
    run(['cp', '-al', base, src])
    os.makedirs(bld)
    kmake = ['make', '-s', '-C', src, f'O={bld}', 'CC=ccache gcc',
             f'-j{os.cpu_count()}']
    env = dict(os.environ, CCACHE_BASEDIR=REPO)
    bad = 0
    for p in patches:
        if p.startswith('0000-'):
            continue
        files = re.findall(r'^\+\+\+ b/(\S+)', open(os.path.join(SER, p)).read(),
                           re.M)
        r = run(['patch', '-s', '-p1', '-F0', '-N', '--no-backup-if-mismatch',
                 '-d', src, '-i', os.path.join(SER, p)], check=False)
        if r.returncode:
            print(f'series: apply {p}: FAILED (does not apply)')
            return bad + 1
        if all(NO_KERNEL.match(f) for f in files):
            print(f'series: build after {p}: no kernel file changed')
            continue
        t = time.time()
        shutil.copy(config, os.path.join(bld, '.config'))
        # The passthrough device rig's subsystems: no patch touches them,
        # and building them after every patch doubled this check's time.
        run([os.path.join(src, 'scripts', 'config'), '--file',
             os.path.join(bld, '.config')] +
            [a for o in SERIES_OFF for a in ('-d', o)])
        ok = run(kmake + ['olddefconfig'], env=env, check=False,
                 stdout=subprocess.DEVNULL).returncode == 0
        log = os.path.join(SER, p.replace('.patch', '.build.log'))
        with open(log, 'w') as fh:
            ok = ok and run(kmake + ['bzImage'], env=env, check=False,
                            stdout=fh, stderr=subprocess.STDOUT).returncode == 0
        warn = [ln for ln in open(log) if 'warning:' in ln or 'error:' in ln]
        if not ok or warn:
            bad += 1
            print(f'series: build after {p}: FAILED ({log})')
            for ln in warn[:20]:
                print('  ' + ln.rstrip())
        else:
            print(f'series: build after {p}: ok, {time.time() - t:.0f} s')
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--no-build', action='store_true',
                    help='skip building the kernel after each patch')
    args = ap.parse_args()
    base = run([os.path.join(REPO, 'harness', 'base.sh')],
               capture_output=True, text=True).stdout.strip()
    cover, specs = read_specs()
    steps = resolve(specs)
    name = run(['git', '-C', REPO, 'config', 'user.name'], check=False,
               capture_output=True, text=True).stdout.strip()
    mail = run(['git', '-C', REPO, 'config', 'user.email'], check=False,
               capture_output=True, text=True).stdout.strip()
    ident = (name or 'LUO developers', mail or 'luo@example.org')
    patches, uncovered = build_series(base, steps, cover, ident)
    print(f'series: {len(patches) - 1} patches and a cover letter in '
          f'{os.path.relpath(SER, REPO)}/')
    bad = checkpatch(patches, uncovered)
    if not args.no_build:
        bad += bisect_build(base, patches)
    print(f'series: {"FAILED" if bad else "ok"}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

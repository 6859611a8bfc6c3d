"""The patch policy: what a patch touches, checked between `submit` and delivery.

A patch comes from a model that read untrusted issue text and repository files, so before
it is committed or pushed it is read with a real diff parser (`unidiff`, git's extended
headers included: modes, new and deleted files, renames, copies, binary files), then as
`git apply --numstat --summary` reads it (what git would actually write), and every change
of a sensitive kind is named. Every path a header names is reviewed (a/ b/, ---/+++, rename
and copy from/to); modes are read as git stores them (any mode with the owner's x bit is
100755, any 12xxxx a symlink); names are matched as a case-insensitive file system opens
them (`.Agent.toml`, `.GITMODULES`, Windows' trailing dots, stream suffixes and 8.3 short names,
HFS+'s ignored code points), and under every name they are reachable by through the patched tree's
directory links (`editor/tasks.json` is `.vscode/tasks.json` with `.vscode -> editor`; the finding names
the links); a link the patch adds or redirects has the files of the folder it leads to reviewed under its
name (`bin -> s2` with `s2/post_compile`: `_reachable_through_redirected_links`):

- `ci_config`: CI definitions (`.github/workflows/*`, local actions: `action.yml` anywhere and every
  file in a folder that holds one in the tree before or after the patch, every other CI system's files:
  `CI_CONFIG_PATHS`), which run with the repository's secrets once pushed; `CODEOWNERS` where code hosts read it,
  which decides who must review; deploy platforms' build
  configs at any depth (`netlify.toml`, `vercel.json`, `Procfile`, `.ebextensions/`...:
  `DEPLOY_CONFIG_NAMES_ANYWHERE`; Heroku's `app.json` at the root and App Engine's `app.yaml` at the root
  or in a service's folder: `ROOT_DEPLOY_CONFIG_NAMES`, `SERVICE_DEPLOY_CONFIG_NAMES`), built with the
  deploy's secrets on every pushed branch; tools read by stem in any of their formats (`vercel.*`,
  `netlify.*`, `lefthook*.*`, `mise.*toml`..., one table with each source: `TOOL_STEMS`); and files
  that run code when the repository is opened or committed to (`.devcontainer/`, `.gitpod.yml`,
  `.pre-commit-config.yaml`, `.vscode/tasks.json`, `*.code-workspace`, `.idx/`, `.replit`, `devbox.json`,
  `.envrc`, Vim's and Neovim's local rc files, git hook managers' files); container builds (`Dockerfile`,
  `*.Dockerfile`, compose files, `Earthfile`, `docker-bake.hcl`), Danger's `Dangerfile`; `Dockerfile.*` never
  matches a document or another language's file (`docs/Jenkinsfile.md`, `src/Dockerfile.tsx`: identify's
  extensions, `OWN_LANGUAGES`);
- `tool_config`: any other hidden file or folder at any depth (a name starting with "."), which tools,
  editors and coding agents read their settings from and may run commands from (`.mcp.json`, `.cursor/`,
  `.cargo/config.toml`, ...): a rule, not a list, so a name nobody listed is still caught; only a few
  inert file names pass (`INERT_HIDDEN_NAMES`: `.gitignore`, `.editorconfig`, ...); agents' configs outside
  hidden folders (`opencode.json`, `crush.json`: `TOOL_CONFIG_STEMS`); JavaScript tools' config modules,
  which run when the tool does (`<tool>.config[.<loader>].<js/ts>`, `<tool>.conf.<js/ts>` at the root or a package's
  root: `JS_CONFIG_INFIXES`); task runners' files (`gulpfile.js`, `Gruntfile.coffee`, `Tiltfile`, `Vagrantfile`;
  not the project's build: `Makefile`, `justfile`);
- `ignore_rules`: an ignore file's edit that un-ignores secret-looking files (`!.env`, a removed `*.pem`), or
  an attributes edit that stops encrypting some (`agent.ignore_rules`);
- `agent_config`: `.agent.toml`, which steers the next run of this agent;
- `submodules`: `.gitmodules` or a gitlink, which make a checkout fetch other code;
- `symlink_outside`: a symlink leading out of the repository or into `.git` once resolved in the
  patched tree (through other links, `..` after a link, links the same patch adds; `.git` in its
  Windows short forms too: `GIT~1`, `GI7EBA~1`), or one that cannot be resolved (a loop of links);
- `executable`: a file made executable, or an edit to a file that already is (`edits an executable
  file`), whatever its new mode, and a rename or copy of one: CI systems and hooks run such scripts
  (`./build.sh`, `bin/post_compile`, `sh b.sh` whether or not the patch drops its x bit), so changing
  one changes what runs with the repository's secrets;
- `secret`: a file whose added lines or added bytes (a binary file's, `agent.binary_patch`), or whose
  new name (an added, renamed or copied path), holds a secret this process holds
  (`agent.redaction`: the GitHub token, the API key), which a model could only have copied from somewhere;
- `unreadable`: a patch the parser cannot read, so nothing about it can be vouched for.

A symlink's target is read as Windows reads it too (`\\` separates; a drive or UNC path is absolute).
The tree before the patch is given as its links and its files (`review_patch`).

`agent fix` lists them (summary and `--json`); `agent ci` and `agent pr` refuse them
unless the user's own config allows the kind (`[patch_policy] allow`), and list allowed
ones in the pull request. `unreadable` and `secret` are never allowed.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import posixpath
import re
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from identify.extensions import EXTENSIONS as IDENTIFIED_EXTENSIONS
from unidiff import PatchSet, UnidiffParseError

from agent.binary_patch import added_bytes
from agent.errors import AgentError
from agent.ignore_rules import IgnoreEdit, is_rules_file, unignored
from agent.redaction import reveals_secret, scrub

# Paths of CI definitions, as each system's docs name them (written as a case-insensitive file system sees
# them: lower case): a prefix ending in "/" is a directory, anything else a file name at the root.
CI_CONFIG_PATHS = (
    ".github/workflows/", ".github/actions/",  # GitHub Actions
    ".gitea/workflows/", ".gitea/actions/", ".forgejo/workflows/", ".forgejo/actions/",  # Gitea, Forgejo Actions
    ".gitlab-ci.yml", ".gitlab-ci.yaml", ".gitlab/", ".circleci/", ".travis.yml", ".travis.yaml",
    "azure-pipelines.yml", "azure-pipelines.yaml", ".azure-pipelines/", ".pipelines/",  # Azure Pipelines
    ".buildkite/", "buildkite.yml", "buildkite.yaml", "buildkite.json",  # Buildkite's `pipeline upload` defaults
    ".drone.yml", ".drone.yaml", ".drone.star", "bitbucket-pipelines.yml", "bitbucket-pipelines.yaml",
    ".woodpecker.yml", ".woodpecker.yaml", ".woodpecker/",  # Woodpecker
    ".tekton/",  # Tekton Pipelines as Code
    "appveyor.yml", ".appveyor.yml", "appveyor.yaml", ".appveyor.yaml",
    ".semaphore/", ".cirrus.yml", ".cirrus.yaml", ".cirrus.star",
    "bitrise.yml", "bitrise.yaml", "codemagic.yaml", "codemagic.yml",
    ".drone.jsonnet", ".build.yml", ".build.yaml", ".builds/",  # Drone's Jsonnet, sourcehut builds
    ".zuul.yaml", "zuul.yaml", ".zuul.d/", "zuul.d/",  # Zuul reads the first of these it finds
    ".teamcity/", ".gocd.yaml", ".gocd.yml", ".screwdriver.yaml", ".screwdriver.yml",  # TeamCity Kotlin DSL, GoCD
    "codefresh.yml", "codefresh.yaml", ".harness/", ".kokoro/",  # Codefresh, Harness, Google's Kokoro
    # Bamboo's repository-stored specs: `bamboo-specs/bamboo.yaml` (YAML) or a Maven project there (Java), "at
    # the directory bamboo-specs/ in the root of your repository" (docs.atlassian.com/bamboo-specs-docs, specs.html).
    # Screwdriver reads `screwdriver.yaml` at the root (github.com/screwdriver-cd/config-parser). Oracle's
    # DevCS builds every `.yml` of `.ci-build/` at the root (docs.oracle.com, developer-cloud, "using YAML").
    # CloudBees CodeShip Pro: `codeship-steps.yml`/`.json` and `codeship-services.yml` (docs.cloudbees.com, cloudbees-
    # codeship, pro-builds-and-configuration/steps). Buddy: `buddy.yml` (buddy.works/docs/yaml/yaml-schema) and YAML
    # autodiscovered in `/.buddy/` (buddy.works/docs/git-hosting/project-settings).
    "bamboo-specs/", "screwdriver.yaml", "screwdriver.yml", ".ci-build/", "codeship-steps.yml",
    "codeship-steps.yaml", "codeship-steps.json", "codeship-services.yml", "codeship-services.yaml",
    "codeship-services.json", "buddy.yml", "buddy.yaml", ".buddy/",
    # Run when the repository is opened (Codespaces, Gitpod, dev containers) with the opener's secrets.
    ".devcontainer/", ".devcontainer.json", ".gitpod.yml", ".gitpod.yaml", ".gitpod.dockerfile",
    # Run by pre-commit.ci on every push and by every developer's `git commit`: it fetches and runs hook repos.
    ".pre-commit-config.yaml", ".pre-commit-config.yml",
    # Run when the folder is opened or a developer commits, with that developer's rights and secrets:
    # VS Code's folder-open tasks (`runOn: folderOpen`), settings (interpreter, terminal profiles, tool paths)
    # and launch configurations; JetBrains run configurations (`.idea/`, shared `.run/`); direnv and mise on
    # `cd`; git hooks of husky, lefthook, overcommit, simple-git-hooks, lint-staged and hook folders set as
    # `core.hooksPath`. Not code: `.editorconfig`, `.vscode/extensions.json` (a recommendation the user
    # confirms), `.gitattributes` (its filters and diff drivers run only from the user's own git config).
    ".vscode/tasks.json", ".vscode/settings.json", ".vscode/launch.json", ".idea/", ".run/",
    # (mise, lefthook, simple-git-hooks and lint-staged, read in any folder and in several formats: `TOOL_STEMS`.)
    ".husky/", ".githooks/", ".git-hooks/", ".hooks/", ".overcommit.yml",
    # Cloud and editor workspaces that run commands on open or boot: IDX's `.idx/dev.nix` (onStart, onCreate)
    # and `.idx/mcp.json`, Replit's `.replit` (onBoot, run) and `replit.nix`, Devbox's `devbox.json`
    # (init_hook on every `devbox shell`), Theia's tasks, launch and settings (VS Code's format, folder-open
    # tasks), VS Code's `.vscode/mcp.json` (servers it starts), coc.nvim's `.vim/coc-settings.json` (language
    # server commands). Editor rc files and `.envrc` are read in whichever folder one opens: see below.
    ".idx/", ".replit", "replit.nix", "devbox.json", ".theia/tasks.json", ".theia/launch.json",
    ".theia/settings.json", ".vscode/mcp.json", ".vim/",
    # Who must review: a CODEOWNERS file makes its owners' approval required by branch protection, so a patch that
    # edits it chooses its own reviewers (or none). Read at the root, in `docs/` and in the host's folder: GitHub's
    # `.github/`, `/`, `docs/` (docs.github.com, "About code owners", CODEOWNERS file location), GitLab's `/`,
    # `docs/`, `.gitlab/` (under `.gitlab/` above; docs.gitlab.com/user/project/codeowners), Gitea's `/`, `docs/`,
    # `.gitea/` (docs.gitea.com/usage/code-owners), Bitbucket's `/`, `.bitbucket/` (support.atlassian.com,
    # bitbucket-cloud, "Set up and use code owners").
    "codeowners", ".github/codeowners", "docs/codeowners", ".gitea/codeowners", ".bitbucket/codeowners",
)
# Names that define CI wherever they are: a local action (`uses: ./any/dir`, run by a workflow with its
# secrets) and Jenkins pipelines (a multibranch job's script path may be any file; these are its conventions).
# AWS CodeBuild's buildspecs (a project names any of them: `buildspec-test.yml`, `ci/buildspec.yml`) and
# GoCD's config-repo files (its YAML and JSON plugins read `**/*.gocd.yaml`, `**/*.gocd.json`) are found anywhere too.
# Run when their folder is opened, whichever folder of the repository that is: a VS Code workspace file
# (`*.code-workspace`: `tasks` run on folder open), direnv's `.envrc` (the nearest one up from `cd`), and
# Vim's and Neovim's local rc files read with 'exrc' (`.nvim.lua`, `.nvimrc`, `.exrc`, `.vimrc`, `_vimrc`,
# `_exrc`), the localvimrc plugin's `.lvimrc` and lazy.nvim's `.lazy.lua`. `flake.nix` and `shell.nix` run
# on `cd` only through an `.envrc` (`use flake`), which is listed.
CI_CONFIG_NAMES_ANYWHERE = ("action.yml", "action.yaml", "jenkinsfile", "*.jenkinsfile", "jenkinsfile.*",
                            "buildspec*.yml", "buildspec*.yaml", "*.gocd.yaml", "*.gocd.yml", "*.gocd.json",
                            "*.code-workspace", ".envrc", ".nvim.lua", ".nvimrc", ".exrc", "_exrc", ".vimrc",
                            "_vimrc", ".lvimrc", ".lazy.lua", *(
    # Container builds: Render, Railway, Fly.io, Koyeb and App Runner build a Dockerfile they find on every pushed
    # branch (render.com/docs/docker, docs.railway.com/builds/dockerfiles, fly.io/docs/reference/configuration),
    # with any `RUN` it holds; CI jobs build them and run compose files (`docker compose up`). Docker's own
    # spellings (docs.docker.com: `Dockerfile`, `<name>.Dockerfile`, `Dockerfile.<name>`; Podman's
    # `Containerfile`; Compose's `compose.yaml`, `docker-compose.yml` and their override files).
    "dockerfile", "containerfile", "*.dockerfile", "*.containerfile", "dockerfile.*", "containerfile.*",
    "docker-compose*.yml", "docker-compose*.yaml", "compose.yml", "compose.yaml", "compose.*.yml", "compose.*.yaml",
    "compose-*.yml", "compose-*.yaml",
    # Earthly's `Earthfile` (`RUN` in its build containers, `LOCALLY` on the host running `earthly`, the CI runner:
    # docs.earthly.dev/docs/earthfile) and Buildx Bake's `docker-bake.hcl`/`.json` and `docker-bake.override.hcl`,
    # and `.override.json`, which `docker buildx bake` reads from the folder it runs in (docs.docker.com/build/bake/
    # reference, "lookup order": its build contexts, Dockerfiles and inline `dockerfile-inline` recipes), container
    # builds like the Dockerfile.
    "earthfile", "docker-bake*.hcl", "docker-bake*.json",
    # Danger runs `Dangerfile` (Ruby, danger.systems/guides/dangerfile), `dangerfile.js`/`.ts` (Danger JS,
    # danger.systems/js), `Dangerfile.swift` (Danger Swift) and `Dangerfile.df.kts` (Danger Kotlin) in CI on every
    # pull request, with the token it comments with.
    "dangerfile", "dangerfile.*"))
# A name a pattern of `CI_CONFIG_NAMES_ANYWHERE` ending in `.*` matches (`dockerfile.*`, `jenkinsfile.*`) is that
# tool's file when its last extension is a variant's (`Dockerfile.prod`, `Dockerfile.alpine`, `Jenkinsfile.release`),
# or a language the tool itself reads (`OWN_LANGUAGES`: `Jenkinsfile.groovy`, `dangerfile.ts`), and not when it is
# a known file type of anything else: a document about the file or another language's source (`docs/Jenkinsfile.md`,
# `src/Dockerfile.tsx`, `src/Jenkinsfile.vue`, `src/ci/jenkinsfile.py`). Known file types are identify's extension
# table (pre-commit's file classifier, `identify.extensions.EXTENSIONS`: {extension: tags}, about 340 of them, kept
# with pre-commit), not a list of ours, plus the few it lacks (`KNOWN_EXTENSIONS_BEYOND_IDENTIFY`). A suffix that
# names a language is read as that language (`Dockerfile.php`, `Dockerfile.nix` pass) and one nobody knows as a
# variant (listed). A pattern whose last extension is fixed (`docker-compose*.yml`, `*.dockerfile`) is not read so.
OWN_LANGUAGES: dict[str, frozenset[str]] = {  # pattern: identify's tags of the languages its tool reads
    "dockerfile.*": frozenset({"dockerfile"}), "containerfile.*": frozenset({"dockerfile"}),
    "jenkinsfile.*": frozenset({"groovy", "jenkins"}),
    "dangerfile.*": frozenset({"ruby", "javascript", "jsx", "ts", "tsx", "swift", "kotlin"}),
}
# Known file types identify does not list: documents (Org mode, RTF, wiki text), and tests' recorded output, which
# snapshot tools name after the test (`tests/Dockerfile.snap`): Jest's and insta's `.snap`
# (jestjs.io/docs/snapshot-testing, insta.rs/docs/cli), syrupy's `.ambr` (github.com/syrupy-project/syrupy).
KNOWN_EXTENSIONS_BEYOND_IDENTIFY = frozenset({"org", "rtf", "wiki", "snap", "ambr"})


def _another_file_type(name: str, pattern: str) -> bool:
    """Whether `name` (folded), matched by `pattern`, is rather a known file type that its tool does not read:
    the rule above `OWN_LANGUAGES`."""
    if not pattern.endswith(".*") or "." not in name.lstrip("."):
        return False
    extension = name.rpartition(".")[2]
    if extension in KNOWN_EXTENSIONS_BEYOND_IDENTIFY:
        return True
    tags = IDENTIFIED_EXTENSIONS.get(extension)
    return tags is not None and not tags & OWN_LANGUAGES.get(pattern, frozenset())


# Deploy platforms' build configuration: each platform builds (and runs the build commands, hooks and scripts
# these files name) with the deploy's secrets on every pushed branch (preview deploys, review apps), so they
# are `ci_config`. Read anywhere: most platforms take them from a base or root directory the project sets
# (monorepos), so no depth is safe. A name ending in "/" is a directory of that name at any depth.
# Netlify: `netlify.toml` in the base directory (docs.netlify.com/build/configure-builds/file-based-configuration,
# .../monorepos). Vercel: `vercel.json` (`now.json` before it) in the project's Root Directory
# (vercel.com/docs/monorepos). AWS Amplify: `amplify.yml` (appRoot per app, docs.aws.amazon.com/amplify/latest/
# userguide/monorepo-configuration). Render: a Blueprint, `render.yaml` by default, "anywhere" by its setup
# (render.com/docs/infrastructure-as-code). Heroku: `heroku.yml`, `Procfile`, heroku-buildpack-apt's `Aptfile`
# (its `app.json` is read at the root only: `ROOT_DEPLOY_CONFIG_NAMES`).
# Cloudflare: `wrangler.toml`/`.json`/`.jsonc` (`[build] command`, run by `wrangler deploy`). Railway:
# `railway.json`/`.toml` at any path the service names (docs.railway.com/config-as-code/reference, builds/
# build-configuration), `.railway/` (its infrastructure as code), Railpack's `railpack.json`, Nixpacks'
# `nixpacks.toml`/`.json`. Fly.io: `fly.toml`. Google App Engine: see `SERVICE_DEPLOY_CONFIG_NAMES`. Firebase:
# `firebase.json` (`predeploy`/`postdeploy` commands). Serverless Framework: `serverless.yml`/`.yaml`/`.json`/
# `.js`/`.ts`. Platform.sh and Upsun: `.platform.app.yaml`, `.platform/`, `.upsun/` (Elastic Beanstalk reads
# `.platform/hooks/` too). AWS App Runner: `apprunner.yaml`. Elastic Beanstalk: `.ebextensions/`. Cloud Native
# Buildpacks: `project.toml` (inline buildpacks run scripts). DigitalOcean App Platform: `.do/` (`app.yaml`,
# `deploy.template.yaml`).
DEPLOY_CONFIG_NAMES_ANYWHERE = (
    "netlify.toml", "vercel.json", "now.json", "amplify.yml", "amplify.yaml", "render.yaml", "render.yml",
    "heroku.yml", "procfile", "aptfile", "wrangler.toml", "wrangler.json", "wrangler.jsonc",
    "railway.json", "railway.toml", ".railway/", "railpack.json", "nixpacks.toml", "nixpacks.json", "fly.toml",
    "firebase.json", "serverless.yml", "serverless.yaml", "serverless.json",
    "serverless.js", "serverless.ts", ".platform.app.yaml", ".platform/", ".upsun/", "apprunner.yaml",
    ".ebextensions/", "project.toml", ".do/",
)
# Tools that read one stem in several formats, or names the lists above missed, with each one's source, so a
# new spelling of a stem is covered without one more name (#16, eighth tester). A pattern without "/" is a file
# name at any depth; `stem.*` takes only data formats' extensions (`DATA_EXTENSIONS`), so `docs/netlify.md` and
# `src/providers/azure.ts` are not one, and `stem.+` those and code's (`CODE_EXTENSIONS`) for a tool that also
# runs a config module (`vercel.ts`), a module also with a loader's infix (`gulpfile.babel.js`, below); a pattern
# ending in "/" is a folder at any depth; any other with "/" is a path's last components at any depth. All lower
# case (as a case-insensitive file system folds them).
DATA_EXTENSIONS = frozenset({"json", "jsonc", "json5", "toml", "yml", "yaml", "pkl", "nix", "dist"})
# The last extensions of the modules JavaScript tools load as code: Node's own, TypeScript's, and those the loaders
# of `interpret` register (webpack-cli, gulp and Grunt's CLIs load configs through it: github.com/gulpjs/interpret,
# webpack.js.org/configuration/configuration-languages), which may carry the loader's infix: `.babel.js`,
# `.esbuild.ts`, `.swc.tsx`, `.sucrase.js`, `.esm.js` (so `<stem>.<anything>.<code>` is that stem's module too).
CODE_EXTENSIONS = frozenset({"js", "cjs", "mjs", "ts", "cts", "mts", "jsx", "tsx", "coffee", "litcoffee", "liticed",
                             "ls"})
TOOL_STEMS: tuple[tuple[str, str], ...] = (
    ("vercel.+", "Vercel: vercel.json and vercel.ts/.js/.mjs/.cjs/.mts (vercel.com/docs/project-configuration)"),
    ("netlify.*", "Netlify: netlify.toml, .yml, .json in the base directory (docs.netlify.com, file-based config)"),
    ("dockerrun.aws.json", "AWS Elastic Beanstalk's Docker platform (docs.aws.amazon.com/elasticbeanstalk)"),
    ("apphosting*.*", "Firebase App Hosting: apphosting.yaml, apphosting.<env>.yaml (firebase.google.com/docs)"),
    ("appspec.*", "AWS CodeDeploy: appspec.yml/.yaml/.json, whose hooks run scripts (docs.aws.amazon.com/codedeploy)"),
    ("azure.*", "Azure Developer CLI: azure.yaml, whose hooks run on `azd up` (learn.microsoft.com, azd schema)"),
    ("okteto.*", "Okteto: okteto.yml/.yaml build and deploy commands (okteto.com/docs/reference/okteto-manifest)"),
    ("porter.*", "Porter: porter.yaml build and predeploy (docs.porter.run)"),
    ("captain-definition", "CapRover: captain-definition (caprover.com/docs/captain-definition-file.html)"),
    ("zbpack.*", "Zeabur: zbpack.json build and start commands (zeabur.com/docs)"),
    ("mise.*toml", "mise: mise.toml, mise.local.toml, mise.<env>.toml, tasks run on `cd` (mise.jdx.dev/configuration)"),
    (".mise.*toml", "mise: .mise.toml, .mise.local.toml, .mise.<env>.toml (mise.jdx.dev/configuration)"),
    ("mise/config.toml", "mise: mise/config.toml in any folder (mise.jdx.dev/configuration)"),
    (".mise/", "mise: .mise/config.toml and its file tasks, .mise/tasks/* (mise.jdx.dev/tasks/file-tasks)"),
    (".config/mise/", "mise: .config/mise/config.toml, conf.d/*.toml (mise.jdx.dev/configuration)"),
    ("_gvimrc", "gVim's local rc with 'exrc' (vimhelp.org/starting.txt)"),
    (".gvimrc", "gVim's local rc with 'exrc' (vimhelp.org/starting.txt)"),
    ("simple-git-hooks.+", "simple-git-hooks: .json/.js/.cjs/.mjs (github.com/toplenboren/simple-git-hooks)"),
    (".simple-git-hooks.+", "simple-git-hooks' dotted form (github.com/toplenboren/simple-git-hooks)"),
    ("lefthook*.*", "lefthook: lefthook[-local].yml/.yaml/.toml/.json/.jsonc, .config/lefthook.yml (lefthook.dev/configuration)"),
    (".lefthook*.*", "lefthook's dotted forms (lefthook.dev/configuration)"),
    (".lefthook/", "lefthook's script folders, .lefthook/<hook>/<script> (lefthook.dev/configuration/Scripts)"),
    ("lint-staged.config.+", "lint-staged: lint-staged.config.js/.mjs/.cjs/.ts, run on commit (github.com/lint-staged/lint-staged)"),
    (".lintstagedrc", "lint-staged: .lintstagedrc, JSON or YAML (github.com/lint-staged/lint-staged)"),
    (".lintstagedrc.+", "lint-staged: .lintstagedrc.json/.yaml/.yml/.js/.cjs/.mjs (github.com/lint-staged/lint-staged)"),
    ("hk.pkl", "hk git hooks (hk.jdx.dev/configuration)"),
    ("hk.local.pkl", "hk's local overrides (hk.jdx.dev/configuration)"),
    ("captainhook.json", "CaptainHook git hooks for PHP (docs.captainhook.info)"),
    ("grumphp.*", "GrumPHP: grumphp.yml, grumphp.yaml, grumphp.yml.dist git hooks (github.com/phpro/grumphp)"),
    ("grumphp.y*ml.dist", "GrumPHP's distributed default (github.com/phpro/grumphp)"),
    ("prek.*", "prek, pre-commit's reimplementation: prek.toml (prek.j178.dev)"),
    ("*.sublime-project", "Sublime Text: a project's build systems run commands (sublimetext.com/docs/projects.html)"),
    ("devfile.*", "Devfile: devfile.yaml/.yml commands run by workspaces (devfile.io/docs)"),
    (".devfile.*", "Devfile's dotted form (devfile.io/docs)"),
    ("devenv.*", "devenv: devenv.nix, devenv.yaml, devenv.local.nix, enterShell on every shell (devenv.sh)"),
    ("ci_scripts/", "Xcode Cloud: ci_scripts/ beside the project runs ci_post_clone.sh and others (developer.apple.com)"),
    ("bin/post_compile", "Heroku's Python buildpack runs bin/post_compile (devcenter.heroku.com, python buildpack)"),
    ("bin/pre_compile", "Heroku's Python buildpack runs bin/pre_compile (devcenter.heroku.com, python buildpack)"),
    ("skaffold.*", "Skaffold: skaffold.yaml, whose lifecycle hooks (`before`/`after` of build and deploy) run on the "
                   "host that runs skaffold, the CI runner (skaffold.dev/docs/lifecycle-hooks)"),
    ("readthedocs.*", "Read the Docs: readthedocs.yml/.yaml, the older names, whose build.jobs and build.commands run "
                      "on every pull request build (readthedocs.org docs/config-file/index.rst names all four)"),
    (".readthedocs.*", "Read the Docs: .readthedocs.yaml/.yml (docs.readthedocs.com, config-file/v2)"),
    ("fly.*.toml", "Fly.io: fly.<env>.toml, deployed with `fly deploy -c` (fly.io/docs/reference/configuration)"),
    # #16, eleventh tester: deploy and CI files read from wherever the project's command or setting points.
    ("cloudbuild*.*", "Google Cloud Build: cloudbuild.yaml/.yml/.json, and any file `gcloud builds submit --config` or "
                      "a trigger's `filename` names, at any depth (cloud.google.com/build/docs/build-config-file-schema)"),
    ("dokku.json", "Dokku: the deploy file the eleventh tester (#16) reports read for `scripts.dokku.predeploy`, "
                   "the commands Dokku's app.json runs, from any path `app-json:set appjson-path` names "
                   "(dokku.com/docs/advanced-usage/deployment-tasks)"),
    ("nginx.conf.sigil", "Dokku: the app's nginx template, rendered into the host's nginx on deploy, at any path "
                         "`nginx:set nginx-conf-sigil-path` names (dokku.com/docs/networking/proxies/nginx)"),
    ("devspace.*", "DevSpace: devspace.yaml, whose hooks, pipelines and commands run on `devspace deploy`/`dev` "
                   "(devspace.sh/docs/configuration/reference)"),
    ("wercker.*", "Wercker (Oracle Container Pipelines): wercker.yml steps (github.com/wercker/docs)"),
    ("shippable*.*", "Shippable: shippable.yml, shippable.jobs.yml, shippable.resources.yml (github.com/Shippable/docs)"),
    ("zeabur.*", "Zeabur: zeabur.json build and start commands (zeabur.com/docs/en-US/deploy/config-file)"),
    ("garden.*", "Garden: garden.yml, the project and action configs whose `exec` actions run commands on the host "
                 "(docs.garden.io/reference/project-config)"),
    ("*.garden.*", "Garden: project.garden.yml, <name>.garden.yml at any depth (docs.garden.io, action configs)"),
    ("werf*.*", "werf: werf.yaml/werf.yml, werf-giterminism.yaml, whose shell stages run in builds "
                "(werf.io/docs/reference/werf_yaml.html)"),
    (".werf/", "werf: .werf/ templates included into werf.yaml (werf.io/docs, werf_yaml_template_engine)"),
    ("cdk.json", "AWS CDK: cdk.json's `app` is the command `cdk deploy`/`synth` runs (docs.aws.amazon.com/cdk, "
                 "cli.html, `--app`)"),
    ("cdktf.json", "CDK for Terraform: cdktf.json's `app` is the command `cdktf deploy`/`synth` runs "
                   "(developer.hashicorp.com/terraform/cdktf/create-and-deploy/configuration-file)"),
    ("pulumi.*", "Pulumi: Pulumi.yaml, the project's runtime and program run by `pulumi up` "
                 "(pulumi.com/docs/iac/concepts/projects/project-file)"),
    ("pulumi.*.*", "Pulumi: Pulumi.<stack>.yaml, the stack's config and providers (pulumi.com/docs/iac/concepts/config)"),
    ("helmfile*.*", "helmfile: helmfile.yaml, whose hooks run commands on `helmfile apply` (helmfile.readthedocs.io)"),
    ("helmfile.yaml.gotmpl", "helmfile's templated main file (helmfile.readthedocs.io)"),
    ("helmfile.d/", "helmfile: every file of helmfile.d/ is loaded (helmfile.readthedocs.io)"),
    ("terragrunt.hcl", "Terragrunt: before_hook/after_hook run commands on every plan and apply "
                       "(terragrunt.gruntwork.io/docs/reference/config-blocks-and-attributes)"),
    ("config/deploy.yml", "Kamal: config/deploy.yml, whose builder and accessories run on deploy (kamal-deploy.org/docs)"),
    (".kamal/", "Kamal: .kamal/hooks/* run on the deployer's machine, .kamal/secrets (kamal-deploy.org/docs/hooks)"),
)

# Settings files outside hidden folders that a tool or coding agent reads and runs commands from, matched like
# `TOOL_STEMS`, kind `tool_config` (the hidden ones, `.crush.json`, `.opencode/`, are hidden names already).
TOOL_CONFIG_STEMS: tuple[tuple[str, str], ...] = (
    ("opencode.*", "opencode: opencode.json/.jsonc, whose `mcp` servers and formatters are commands it starts "
                   "(opencode.ai/docs/config)"),
    ("crush.*", "Crush: crush.json, whose `mcp` and `lsp` entries are commands it starts (github.com/charmbracelet/crush)"),
    # Task runners' files, which are programs the developer's own tool runs on their machine (not in a container)
    # when they type its command, even only to list tasks: listed in `agent fix` so they look. Where the line is:
    # these are a developer tool's program beside the project (a VM's or cluster's provisioning, JavaScript task
    # modules, the same kind as `<tool>.config.js` below). The project's own build and test entry points are not
    # listed (`Makefile`, `justfile`, `Rakefile`, `CMakeLists.txt`, `build.gradle`, `setup.py`, `noxfile.py`,
    # `tox.ini`, `package.json`): CI and the tests run them as they run the code the patch changes, so an edit to
    # them reaches no further than that code does, and fixes ordinarily edit them.
    ("gulpfile.+", "gulp: gulpfile.js/.mjs/.cjs/.ts, gulpfile.babel.js, any interpret extension "
                   "(gulpjs.com/docs/en/getting-started/javascript-and-gulpfiles)"),
    ("gruntfile.+", "Grunt: Gruntfile.js, Gruntfile.coffee (gruntjs.com/getting-started)"),
    ("jakefile", "Jake: Jakefile, looked up from the current folder through its parents (jake's lib/loader.js)"),
    ("jakefile.+", "Jake: Jakefile.js, .cjs, .coffee, .ls, .ts (jake 10's lib/loader.js, SUPPORTED_EXTENSIONS)"),
    ("jakelib/", "Jake: every .jake and .js file in jakelib/ is loaded with the Jakefile (`jake --help`, -J)"),
    ("tiltfile", "Tilt: the Tiltfile, Starlark whose local() and local_resource run host commands on `tilt up` "
                 "(docs.tilt.dev/api.html)"),
    ("vagrantfile", "Vagrant: the Vagrantfile, Ruby loaded by every vagrant command, whose provisioners and "
                    "triggers run host commands (developer.hashicorp.com/vagrant/docs/vagrantfile)"),
)
# JavaScript tools load their configuration as a module, so it runs when the tool does: by hooks on commit, by
# `npm test`/`npm run build`, by editors' language servers on open (ESLint, Prettier, Jest, Vite, Vitest,
# webpack, Babel, PostCSS, Tailwind, commitlint, Stylelint, Playwright, Next, Nuxt, Astro, Svelte...). The rule,
# not a list: `<tool>.config.<code>`, `<tool>.config.<anything>.<code>` (webpack documents `webpack.config.<loader>.
# <ext>`: `webpack.config.babel.js`, `.esbuild.ts`) and `<tool>.conf.<code>` (Karma's `karma.conf.js`, WebdriverIO's
# `wdio.conf.ts`, Protractor's and Nightwatch's `.conf.js`: karma-runner.github.io/latest/config/configuration-
# file.html, webdriver.io/docs/configurationfile, nightwatchjs.org/guide/configuration) with a code extension of
# `CODE_EXTENSIONS` are `tool_config` at the root or in a package's root (a folder that holds a `package.json` or
# `deno.json[c]` before or after the patch), where these tools look for them; `src/app.config.ts` elsewhere is the
# application's own module. Their `.<tool>rc.js` forms are hidden names, `tool_config` by that rule.
JS_CONFIG_INFIXES = ("config", "conf")  # `<tool>.config.<code>`, `<tool>.conf.<code>`
PACKAGE_MANIFESTS = ("package.json", "deno.json", "deno.jsonc")


def _is_tool_stem(path: str, table: tuple[tuple[str, str], ...] = TOOL_STEMS) -> bool:
    """Whether `path` (folded) is named by a row of `table` (`TOOL_STEMS`, `TOOL_CONFIG_STEMS`)."""
    name, folders = posixpath.basename(path), path.split("/")[:-1]
    for pattern, _ in table:
        if pattern.endswith("/"):
            found = f"/{pattern}" in f"/{'/'.join(folders)}/"
        elif "/" in pattern:
            found = path == pattern or path.endswith("/" + pattern)
        else:
            stem, _, extension = name.rpartition(".")
            if pattern.endswith((".*", ".+")):
                allowed = DATA_EXTENSIONS | (CODE_EXTENSIONS if pattern.endswith(".+") else frozenset())
                loaded = pattern.endswith(".+") and extension in CODE_EXTENSIONS  # `gulpfile.babel.js`: a loader's infix
                found = extension in allowed and (fnmatch.fnmatchcase(stem, pattern[:-2])
                                                  or loaded and fnmatch.fnmatchcase(stem, pattern[:-2] + ".*"))
            else:
                found = fnmatch.fnmatchcase(name, pattern)
        if found:
            return True
    return False


# Names too common to be a platform's file anywhere (`locales/en/app.json`, `config/app.yaml`), read where the
# platform reads them. Heroku reads `app.json` (`scripts.postdeploy`, review apps) "in the root directory of the
# app's source code" (devcenter.heroku.com/articles/app-json-schema): the repository's root.
# Dokku reads `CHECKS` (its zero-downtime deploy checks) from the root of the app's source (dokku.com/docs/
# deployment/zero-downtime-deploys): a name too common for any depth.
ROOT_DEPLOY_CONFIG_NAMES = ("app.json", "checks")
# Google App Engine deploys each service from "a directory in the root of your app" that holds "that service's
# app.yaml along with the associated source code" (cloud.google.com/appengine/docs/standard/configuration-files):
# `app.yaml`/`app.yml` is `ci_config` at the root, or in a folder whose tree (before or after the patch) also holds
# a runtime's manifest or entry point (`APP_ENGINE_SOURCES`), as a service folder does; elsewhere it is some other
# tool's file.
SERVICE_DEPLOY_CONFIG_NAMES = ("app.yaml", "app.yml")
APP_ENGINE_SOURCES = ("requirements.txt", "main.py", "package.json", "go.mod", "pom.xml", "build.gradle",
                      "build.gradle.kts", "composer.json", "index.php", "gemfile", "dockerfile", "*.csproj")
_APP_ENGINE_NAMES = frozenset(name for name in APP_ENGINE_SOURCES if "*" not in name)
_APP_ENGINE_SUFFIXES = tuple(name[1:] for name in APP_ENGINE_SOURCES if name.startswith("*") and "*" not in name[1:])
# A local action's definition: the folder holding it (`uses: ./tools/lint`) is run by a workflow, with its
# secrets, whatever file of the folder the definition names (`runs.main: dist/index.js`, a composite step's
# script, a Dockerfile), so every file in that folder or below is `ci_config` (`_Tree.action_dirs`).
ACTION_NAMES = ("action.yml", "action.yaml")
# Hidden files (a name starting with "."), at any depth, that no tool runs code from: each only lists paths
# to leave out or keep (`.gitignore`, `.dockerignore`, `.prettierignore`, `.eslintignore`, `.npmignore`: patterns,
# never commands), keeps an empty folder in git (`.gitkeep`, `.keep`: empty by convention, read by nothing),
# maps author names for `git log`/`shortlog` (`.mailmap`), sets indentation and charset (`.editorconfig`: its
# specification has no command), or names filters and diff drivers git runs only from the user's own config
# (`.gitattributes`). Only as a file's own name, never a folder's: a hidden folder is read by some tool.
# Every other hidden file or folder is `tool_config`: tools, editors and coding agents read their settings from
# such names (`.mcp.json`, `.cursor/`, `.claude/settings.json`, `.cargo/config.toml`, `.yarnrc.yml`,
# `.pnpmfile.cjs`, `.dir-locals.el`, `.lfsconfig`, ...) and many run commands from them; no list of them
# stays complete, so the rule is the other way round.
INERT_HIDDEN_NAMES = (".gitignore", ".gitkeep", ".keep", ".mailmap", ".editorconfig", ".gitattributes",
                      ".dockerignore", ".prettierignore", ".eslintignore", ".npmignore")
# Hidden paths that are inert as a whole: VS Code's extension recommendations, which the user confirms.
INERT_HIDDEN_PATHS = (".vscode/extensions.json",)
AGENT_CONFIG_NAME = ".agent.toml"
# Code points HFS+ ignores in names (git's is_hfs_dotgit list): `.agent\u200c.toml` is `.agent.toml` there.
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])
# Letters whose upper case is an ASCII letter but which NFKC and casefold leave alone: the dotless i
# (`.cırcleci/` is `.CIRCLECI/` upper-cased, as `.ſ` is `.S`). Every other such code point (ſ, K as
# the Kelvin sign, ß, the ligatures) folds to ASCII already; tests/agent/test_patch_policy.py checks all.
_ASCII_BY_UPPER_CASE = {0x0131: "i"}
GIT_DIR_NAME = ".git"

def _spellings(pattern: str) -> list[str]:
    """The plain names a `TOOL_STEMS` pattern stands for (`lefthook*.*`: `lefthook.yml`, `lefthook.json`...),
    its wildcards read as nothing: what an 8.3 short name (`LEFTHO~1.YML`) is compared with."""
    if pattern.endswith((".*", ".+")):
        extensions = DATA_EXTENSIONS | (CODE_EXTENSIONS if pattern.endswith(".+") else frozenset())
        return [f"{pattern[:-2].replace('*', '')}.{extension}" for extension in sorted(extensions)]
    return [pattern.replace("*", "")]


# Every file or folder name the policy protects: what a Windows short name (`GITMOD~1`, `GIT~1`) is compared with.
_PROTECTED_NAMES = tuple(dict.fromkeys(
    part for path in (*CI_CONFIG_PATHS, *CI_CONFIG_NAMES_ANYWHERE, *DEPLOY_CONFIG_NAMES_ANYWHERE, AGENT_CONFIG_NAME,
                      ".gitmodules", GIT_DIR_NAME,
                      *(name for pattern, _ in TOOL_STEMS + TOOL_CONFIG_STEMS for name in _spellings(pattern)))
    for part in path.split("/") if part and not any(ch in part for ch in "*?[")))
SYMLINK_MODE, GITLINK_MODE = "120000", "160000"
MAX_LINK_HOPS = 40  # Linux's MAXSYMLINKS: a path needing more links than this does not resolve (ELOOP)
KIND_TEXT = {
    "ci_config": "changes CI configuration (or a deploy platform's build), which runs with the repository's "
                 "(or its user's) secrets, or the code owners who must review",
    "tool_config": "changes a hidden configuration file that tools, editors or agents read and may run code from",
    "agent_config": "changes the agent's own configuration",
    "submodules": "changes submodules, which fetch other repositories",
    "symlink_outside": "adds a symlink leading outside the repository",
    "executable": "makes a file executable or edits one, which CI and hooks may run",
    "ignore_rules": "changes ignore (or encryption) rules so that local secret files can be committed, built into "
                    "an image or published",
    "secret": "adds one of your secrets (a token or key this process holds)",
    "unreadable": "cannot be read as a diff",
}
NEVER_ALLOWED = frozenset({"unreadable", "secret"})


class PatchRefused(AgentError):
    """The patch makes changes of a kind the user has not allowed for delivery by `ci`/`pr`."""


@dataclass(frozen=True)
class FileChange:
    """One file of the patch: its path (the old one for a deletion), what happened, its git modes."""

    path: str
    action: str  # added, removed, modified, renamed, copied, typechange (a file became a symlink, or back)
    old_path: str | None = None  # for renames and copies
    old_mode: str | None = None
    new_mode: str | None = None
    binary: bool = False
    edited: bool = False  # its content changes (a hunk or a binary patch), not only its mode or name
    # Every path any header names (diff --git a/ b/, ---/+++, rename/copy from/to): all are reviewed.
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One sensitive change: its kind (a key of `KIND_TEXT`), the file, and a detail (mode, link target)."""

    kind: str
    path: str
    detail: str = ""

    def __str__(self) -> str:
        """One line; a secret in a file name or link target is masked (`agent.redaction.scrub`)."""
        return scrub(f"{self.path}: {KIND_TEXT[self.kind]}" + (f" ({self.detail})" if self.detail else ""))


@dataclass
class PatchReview:
    """Every file a patch touches and every sensitive change in it."""

    files: list[FileChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def refused(self, allow: Iterable[str] = ()) -> list[Finding]:
        """The findings whose kind is not in `allow`."""
        allowed = set(allow) - NEVER_ALLOWED
        return [finding for finding in self.findings if finding.kind not in allowed]

    def to_json(self) -> dict[str, Any]:
        return {"files": [asdict(change) for change in self.files],
                "sensitive": [asdict(finding) | {"summary": str(finding)} for finding in self.findings]}


def review_patch(patch: str, links: Mapping[str, str] | None = None,
                 paths: Iterable[str] | Mapping[str, str] = ()) -> PatchReview:
    """Read `patch` (a `git diff` with extended headers) and name its files and sensitive changes.

    `links` are the symlinks of the tree the patch applies to ({path: target}, paths relative
    to the repository's root; `agent.workspace.snapshot_links`); None: a tree without any.
    Every link of the patched tree is resolved there, so a link that leaves the repository only
    through another one (`p -> q/..` with `q -> ../..`) is found. `paths` are that tree's files
    (relative to the root, as `Snapshot.files` keys them): which folders hold a local action (every
    file below one is `ci_config`), and which hidden names a Windows short name may open; given as
    `Snapshot.files` ({path: "MODE SHA"}), their modes say which are executable. A link the patch adds or
    redirects makes the files of the folder it leads to reachable under its name: those are reviewed as
    added files (`_reachable_through_redirected_links`).
    """
    review = PatchReview()
    if not patch.strip():
        return review
    readable, mark = _names_told_apart(patch)
    try:
        parsed = PatchSet(readable)
    except (UnidiffParseError, ValueError) as exc:
        review.findings.append(Finding("unreadable", "(patch)", str(exc).splitlines()[0] if str(exc) else ""))
        return review
    if not len(parsed) and patch.strip():
        review.findings.append(Finding("unreadable", "(patch)", "no file headers"))
    changes = _type_changes_folded([(_file_change(patched, mark), patched) for patched in parsed])
    paths = paths if isinstance(paths, Mapping) else list(paths)
    files = _patched_files(paths, [change for change, _ in changes])  # the tree after the patch
    tree = _Tree.of([*paths, *(path for change, _ in changes if change.action != "removed" for path in change.paths)])
    blobs = added_bytes(readable)
    for change, patched in changes:
        review.files.append(change)
        review.findings += _findings(change, tree)
        header = next(iter(getattr(patched, "patch_info", None) or ()), "").rstrip("\n")
        if (reveals_secret("".join(line.value for hunk in patched for line in hunk if line.is_added))
                or _bytes_reveal_secret(blobs.get(header, b""))):
            review.findings.append(Finding("secret", change.path, "masked wherever it is shown"))
    patched_links, changed, found = _patched_links(changes, dict(links or {}))
    review.findings += found + _links_leading_outside(patched_links, changed, dict(links or {}))
    _review_as_git_reads(patch, review, tree)
    review.findings += [Finding("ignore_rules", path, detail) for path, detail in unignored(
        IgnoreEdit(change.path, *_hunk_lines(patched)) for change, patched in changes
        if is_rules_file(_as_filesystems_see(change.path)))]
    review.findings += [Finding("ignore_rules", change.path, f"renamed from {change.old_path}: none of its rules apply")
                        for change, _ in changes if change.action == "renamed" and change.old_path
                        and is_rules_file(_as_filesystems_see(change.old_path))
                        and not is_rules_file(_as_filesystems_see(change.path))]
    review.findings += _secrets_in_names(review)
    review.findings += _reached_through_links(review, patched_links, tree)
    named = {(finding.kind, finding.path) for finding in review.findings}
    review.findings += [finding for finding in _reachable_through_redirected_links(
        patched_links, changed, dict(links or {}), files, tree) if (finding.kind, finding.path) not in named]
    named = {finding.path for finding in review.findings if finding.kind in _NAME_KINDS}
    review.findings = [finding for finding in review.findings
                       if finding.kind != "tool_config" or finding.path not in named]  # the more precise kind
    return review


_NAME_KINDS = ("ci_config", "agent_config", "submodules")  # what a name says before `tool_config` does


def _may_name(path: str) -> bool:
    """Whether `path` may hold what `_Tree.of` looks for (a hidden component, a short name, an action's
    definition): any path that is not ASCII (folding may make a dot), else these substrings; a quick test."""
    return not path.isascii() or path.startswith(".") or "/." in path or "~" in path or "action" in path.lower()


@dataclass(frozen=True)
class _Tree:
    """What the policy knows of the trees before and after the patch besides their links: the folders
    holding a local action (`ACTION_NAMES`), and the long names an 8.3 short name may stand for
    (`_PROTECTED_NAMES`, then every hidden name and every action folder's name in the trees: a short name
    opens only a name that exists). Both folded as `_as_filesystems_see` folds names."""

    action_dirs: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()
    service_dirs: frozenset[str] = frozenset()  # folders holding an App Engine runtime's source (`APP_ENGINE_SOURCES`)
    package_dirs: frozenset[str] = frozenset({""})  # a package's root: the root, folders with `PACKAGE_MANIFESTS`

    @classmethod
    def of(cls, paths: Iterable[str]) -> _Tree:
        """The facts of a tree holding `paths` (files, relative to the root; "" is the root's folder)."""
        paths = list(paths)
        listed = [path for path in paths if _may_name(path)]  # the few that matter
        seen = {part: _as_filesystems_see(part) for part in {part for path in listed for part in path.split("/")}}
        actions = {part for part, name in seen.items()
                   if name in ACTION_NAMES or set(_long_names(name)) & set(ACTION_NAMES)}
        action_dirs = frozenset(_as_filesystems_see(path.rpartition("/")[0]) for path in listed
                                if path.rpartition("/")[2] in actions)
        hidden = {name for name in seen.values() if name.startswith(".") and name not in (".", "..")}
        in_action_dirs = {part for folder in action_dirs for part in folder.split("/") if part}
        names = [(path.rpartition("/")[0], path.rpartition("/")[2].lower()) for path in paths]
        services = frozenset(_as_filesystems_see(folder) for folder, name in names
                             if name in _APP_ENGINE_NAMES or name.endswith(_APP_ENGINE_SUFFIXES))
        packages = frozenset(_as_filesystems_see(folder) for folder, name in names if name in PACKAGE_MANIFESTS)
        return cls(action_dirs, tuple(dict.fromkeys([*_PROTECTED_NAMES, *sorted(hidden | in_action_dirs)])), services,
                   packages | {""})

    def is_js_config(self, path: str) -> bool:
        """Whether `path` (folded) is a JavaScript tool's config module where tools look for one
        (`JS_CONFIG_INFIXES` at the root or a package's root)."""
        folder, _, name = path.rpartition("/")
        parts = name.split(".")
        return (parts[-1] in CODE_EXTENSIONS and any(part in JS_CONFIG_INFIXES for part in parts[1:-1])
                and folder in self.package_dirs)

    def is_deploy_config(self, path: str) -> bool:
        """Whether `path` (folded) is a platform file read only at the root or in a service's folder."""
        folder, _, name = path.rpartition("/")
        if name in ROOT_DEPLOY_CONFIG_NAMES:
            return folder == ""
        return name in SERVICE_DEPLOY_CONFIG_NAMES and (folder == "" or folder in self.service_dirs)

    def in_action_dir(self, path: str) -> bool:
        """Whether `path` (folded) is in a local action's folder or below it."""
        return any(folder == "" or path.startswith(folder + "/") for folder in self.action_dirs)


MAX_LINK_ALIASES = 64  # names one path is reviewed under through directory links (`x -> .` makes endless ones)


def _patched_files(paths: Iterable[str] | Mapping[str, str], changes: list[FileChange]) -> dict[str, str | None]:
    """The files of the patched tree, {path: git mode, None when unknown}: the tree's (`paths`, with modes
    when given as `Snapshot.files`), then the patch's additions and removals."""
    files: dict[str, str | None] = ({path: entry.split(" ", 1)[0] for path, entry in paths.items()}
                                    if isinstance(paths, Mapping) else dict.fromkeys(paths))
    for change in changes:
        if change.action == "removed" or (change.action == "renamed" and change.old_path):
            files.pop(change.old_path if change.action == "renamed" else change.path, None)
        if change.action != "removed" and not _is_symlink(change.new_mode):
            files[change.path] = change.new_mode or files.get(change.path)
    return files


def _reachable_through_redirected_links(links: Mapping[str, str], changed: set[str], base: Mapping[str, str],
                                        files: Mapping[str, str | None], tree: _Tree) -> list[Finding]:
    """Findings for the files a link makes reachable under its name when the patch adds or redirects it: with
    `s2/post_compile` in the tree, a new `bin -> s2` makes Heroku run it as `bin/post_compile`; `ci_scripts ->
    tools` makes tools/ Xcode Cloud's. Each such link (and each link of the tree whose destination the patch
    changes, as `.github -> x` does once `x -> ci` is added), resolved in the patched tree to a folder, has that
    folder's files (`files`) reviewed as added files under the link's name: the kinds their names take there
    (`ci_config`, `tool_config`, `agent_config`, `submodules`) beyond those they had, and `executable` for an
    executable one. One finding per link and kind, on the link, naming the first `MAX_REACHED_NAMED` files.

    A file's name under the link differs from its own only in its folders, so each folder is classified once
    (`_folder_kinds`) and a file's whole name only where its own name is one a rule reads with its folder
    (`_PATH_SPECIFIC_NAMES`, a JavaScript config module, a short name): a link to a 100,000-file folder costs
    one classification per folder, not per file."""
    seen_links, seen_base = _as_seen(links), _as_seen(base)
    redirected = [path for path in sorted(links) if path in changed
                  or _resolve(_as_filesystems_see(path), seen_links) != _resolve(_as_filesystems_see(path), seen_base)]
    if not redirected or not files:
        return []
    folded = [(_as_filesystems_see(path), path, mode) for path, mode in files.items()]
    found: list[Finding] = []
    for link in redirected:
        seen_link = _as_filesystems_see(link)
        leads_to = _resolve(seen_link, seen_links)
        if not isinstance(leads_to, str) or _in_git_dir(leads_to) or leads_to == seen_link:
            continue
        prefix = f"{leads_to}/" if leads_to else ""
        reached: dict[str, list[str]] = {}
        folder_kinds: dict[str, list[str]] = {}
        for seen, path, mode in folded:
            if not seen.startswith(prefix) or seen.startswith(seen_link + "/"):
                continue
            alias = f"{seen_link}/{seen[len(prefix):]}"
            folder, _, name = alias.rpartition("/")
            if folder not in folder_kinds:
                folder_kinds[folder] = _name_kinds(f"{folder}/{_PROBE}", tree)
            kinds = set(folder_kinds[folder])
            if name in _PATH_SPECIFIC_NAMES or "~" in alias or not name.isascii() or tree.is_js_config(name):
                kinds.update(_name_kinds(alias, tree))
            kinds = {kind for kind in kinds if len(reached.get(kind, ())) <= MAX_REACHED_NAMED}  # one more: "and more"
            if kinds:
                had = set(_name_kinds(seen, tree))
                kinds = {kind for kind in kinds if kind not in had and not (kind == "tool_config" and had)}
            if _is_executable(mode):
                kinds.add("executable")
            for kind in sorted(kinds):
                if len(reached.setdefault(kind, [])) <= MAX_REACHED_NAMED:
                    reached[kind].append(f"{path} as {link}/{path[len(prefix):]}")
        for kind, names in reached.items():
            shown = ", ".join(names[:MAX_REACHED_NAMED]) + (" and more" if len(names) > MAX_REACHED_NAMED else "")
            found.append(Finding(kind, link, f"-> {links[link]}: makes {shown} reachable"))
    return found


MAX_REACHED_NAMED = 3  # files a finding on a redirected link names (the kind is the link's, whatever their number)
_PROBE = "\0"  # a file name no rule matches (git paths never hold NUL): what a folder's own kinds are read with
# File names that rules read together with their folder (`.vscode/tasks.json`, `bin/post_compile`, App Engine's
# `app.yaml`): under a link their kind may change although their folder's does not.
_PATH_SPECIFIC_NAMES = frozenset(
    {entry.rpartition("/")[2] for entry in CI_CONFIG_PATHS if "/" in entry.rstrip("/") and not entry.endswith("/")}
    | {pattern.rpartition("/")[2] for pattern, _ in TOOL_STEMS + TOOL_CONFIG_STEMS
       if "/" in pattern and not pattern.endswith("/")}
    | set(SERVICE_DEPLOY_CONFIG_NAMES) | set(ROOT_DEPLOY_CONFIG_NAMES))


def _reached_through_links(review: PatchReview, links: Mapping[str, str], tree: _Tree) -> list[Finding]:
    """Findings for changed paths that are sensitive under another name, reached through a directory link
    of the patched tree: with `.vscode -> editor` committed, `editor/tasks.json` is what VS Code opens as
    `.vscode/tasks.json`. Each finding names the link."""
    seen_links, original = _as_seen(links), {_as_filesystems_see(path): path for path in links}
    resolved = {path: _resolve(path, seen_links) for path in seen_links}
    directories = {path: to for path, to in resolved.items() if isinstance(to, str) and not _in_git_dir(to)}
    named = {(finding.kind, finding.path) for finding in review.findings}
    found: list[Finding] = []
    for change in review.files:
        if change.action == "removed":
            continue
        for alias, via in _aliases(_as_filesystems_see(change.path), directories):
            for kind in _name_kinds(alias, tree):
                if (kind, change.path) not in named:
                    named.add((kind, change.path))
                    taken = ", ".join(f"{original[link]} -> {seen_links[link]}" for link in via)
                    found.append(Finding(kind, change.path, f"reached as {alias} through the "
                                                            f"link{'s' if len(via) > 1 else ''} {taken}"))
    return found


def _aliases(path: str, directories: Mapping[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """Every other name `path` is reachable under through the links `directories` ({link: where it leads,
    relative to the root, "" the root itself}; a file link leading to `path` itself counts too),
    transitively (shortest chains first), as (name, the links taken, first to last), at most
    MAX_LINK_ALIASES of them."""
    found: dict[str, tuple[str, ...]] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(path, ())]
    while pending and len(found) < MAX_LINK_ALIASES:
        name, via = pending.pop(0)
        for link, leads_to in directories.items():
            if leads_to == name:  # a file link: `.agent.toml -> conf/agent.toml` opens the changed file itself
                alias = link
            elif leads_to == "" or name.startswith(leads_to + "/"):
                alias = f"{link}/{name[len(leads_to) + 1:] if leads_to else name}"
            else:
                continue
            if alias != path and alias not in found and len(found) < MAX_LINK_ALIASES:
                found[alias] = (*via, link)
                pending.append((alias, found[alias]))
    return list(found.items())


def _secrets_in_names(review: PatchReview) -> list[Finding]:
    """A `secret` finding for each file the patch adds, renames or copies to a name that holds one of the
    process's secrets (`echo hi > leak-$GITHUB_TOKEN.txt`): pushing the file pushes its name. A name's
    directories are read joined too, so a token split over `ghp_ab/cd…` is found; an old name going away
    is no leak."""
    found: list[Finding] = []
    flagged = {finding.path for finding in review.findings if finding.kind == "secret"}
    for change in review.files:
        if change.action == "removed" or change.path in flagged:
            continue
        names = [name for name in (change.path, *change.paths) if name != change.old_path]
        if any(reveals_secret(name) or reveals_secret(name.replace("/", "")) for name in names):
            found.append(Finding("secret", change.path, "in its name; masked wherever it is shown"))
            flagged.add(change.path)
    return found


def _type_changes_folded(changes: list[tuple[FileChange, Any]]) -> list[tuple[FileChange, Any]]:
    """`changes` with each change of a path's type (file <-> symlink, which git writes as a deletion
    followed by a creation of the same path) made one `typechange`, paired with the creation's hunks."""
    folded: list[tuple[FileChange, Any]] = []
    for change, patched in changes:
        previous = folded[-1][0] if folded else None
        if previous and change.action == "added" and previous.action == "removed" and previous.path == change.path:
            removed = folded.pop()[0]
            change = FileChange(path=change.path, action="typechange", old_mode=removed.old_mode,
                                new_mode=change.new_mode, binary=change.binary, edited=change.edited,
                                paths=tuple(dict.fromkeys(removed.paths + change.paths)))
        folded.append((change, patched))
    return folded


def _bytes_reveal_secret(blob: bytes) -> bool:
    """Whether a binary file's added bytes hold a secret: read as UTF-8 and as UTF-16 (either byte order,
    at either alignment), the encodings git counts as binary, each in the scrubber's escaped forms."""
    if not blob:
        return False
    texts = [blob.decode("utf-8", errors="replace")]
    texts += [blob[start:].decode(encoding, errors="replace") for encoding in ("utf-16-le", "utf-16-be")
              for start in (0, 1)]
    return any(map(reveals_secret, texts))


def _patched_links(changes: list[tuple[FileChange, Any]],
                   base: dict[str, str]) -> tuple[dict[str, str], set[str], list[Finding]]:
    """The symlinks of the patched tree ({path: target}), those the patch added or changed, and a finding
    for each link whose target the patch does not show."""
    links, changed, found = dict(base), set[str](), list[Finding]()
    for change, patched in changes:
        if change.action == "removed":
            links.pop(change.path, None)
            continue
        if change.action == "renamed" and change.old_path:
            was = links.pop(change.old_path, None)
        else:
            was = links.get(change.old_path if change.action == "copied" and change.old_path else change.path)
        if not (_is_symlink(change.new_mode) or (change.new_mode is None and was is not None)):
            links.pop(change.path, None)  # a file, or a link turned into one
            continue
        target = _symlink_target(patched) if any(line.is_added for hunk in patched for line in hunk) else was
        if target is None:  # a link whose target the patch does not show: nothing to resolve
            found.append(Finding("symlink_outside", change.path, "a link whose target the patch does not show"))
            continue
        links[change.path] = target
        changed.add(change.path)
    return links, changed, found


def _links_leading_outside(links: dict[str, str], changed: set[str], base: dict[str, str]) -> list[Finding]:
    """The links of the patched tree (`links`) that resolve outside the repository, into `.git`, or
    nowhere (a loop).

    Each link the patch adds or changes (`changed`) is checked, and so is every link of the tree that
    the patch made lead outside (through a link it added on the way); a link that already led
    outside before the patch (in `base`) is the repository's own, not this patch's.
    """
    found: list[Finding] = []
    seen_after, seen_before = _as_seen(links), _as_seen(base)
    for path in sorted(links):
        after = _resolve(path, seen_after)
        if isinstance(after, str) and not _in_git_dir(after):
            continue
        if path not in changed:
            before = _resolve(path, seen_before)
            if not isinstance(before, str) or _in_git_dir(before):
                continue
        where = ("a loop of links, never resolves" if after is _LOOP else "resolves into .git" if after is not None
                 else "resolves outside the repository")
        found.append(Finding("symlink_outside", path, f"-> {links[path]}: {where}"))
    return found


_LOOP = object()  # what `_resolve` answers for a path that needs more than MAX_LINK_HOPS links


def _as_seen(links: Mapping[str, str]) -> dict[str, str]:
    """`links` keyed by the names a case-insensitive file system opens (`SUB/Q` is the link `sub/q` there)."""
    return {_as_filesystems_see(path): target for path, target in links.items()}


def _resolve(path: str, links: Mapping[str, str]) -> str | object | None:
    """Where `path` leads in a tree whose symlinks are `links` (keyed as `_as_seen` makes them): a path
    relative to the root; None when it leaves the root (`..` above it, an absolute target);
    `_LOOP` when it never resolves.

    Resolved as `realpath` resolves it, confined to the root, and lexically where the tree
    has no link: a missing component counts as a directory, so nothing that could lead out
    is missed. Names are compared as a case-insensitive file system (macOS, Windows) compares
    them, and a component in 8.3 short-name form opens the link it may abbreviate (`_link_named`).
    A target is read as Windows reads it too (`_target_parts`). Bounded by MAX_LINK_HOPS, as the
    kernel is, so loops of links end.
    """
    done: list[str] = []
    pending = path.split("/")[::-1]  # a stack: the next component last
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        part = _as_filesystems_see(part)
        part = _link_named(done, part, links) or part
        target = links.get("/".join([*done, part]))
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return _LOOP
        parts = _target_parts(target)
        if parts is None:
            return None
        pending += parts[::-1]
    return "/".join(done)


# A Windows drive (`C:/x`, `C:\x`, and `c:x`, relative to that drive's current folder: outside all the same).
_DRIVE = re.compile(r"[A-Za-z]:")


def _target_parts(target: str) -> list[str] | None:
    """A symlink's target as its components, read as Windows reads it too (git checks links out there
    with `core.symlinks`): `\\` separates as `/` does (`GIT~1\\config`, `..\\..\\x`); None for a target
    that is absolute on either system, so outside the repository: `/x`, a UNC path (`\\\\host\\share`,
    `//host/share`), a drive (`C:/Windows`, `C:\\x`, `c:x`), and an empty target. Neither system expands
    anything in a link's target: `~/.ssh`, `$HOME/x` and `%USERPROFILE%\\x` are folders named `~`, `$HOME`
    and `%USERPROFILE%` beside the link, inside the repository."""
    if not target or target.startswith(("/", "\\")) or _DRIVE.match(target):
        return None
    return re.split(r"[\\/]", target)


def _link_named(directory: list[str], component: str, links: Mapping[str, str]) -> str | None:
    """The name of the link in `directory` that `component`, an 8.3 short name, may open on Windows
    (`ED~1` for the link `editor`); None when it is no short name or names no link there."""
    if _SHORT_NAME.fullmatch(component) is None:
        return None
    prefix = "/".join(directory) + "/" if directory else ""
    return next((path[len(prefix):] for path in links
                 if path.startswith(prefix) and "/" not in path[len(prefix):]
                 and _abbreviates(component, path[len(prefix):])), None)


def _in_git_dir(path: str) -> bool:
    """Whether `path` is a `.git` directory or inside one (the repository's or a submodule's), read as
    Windows opens it too: `GIT~1/config`, `git~2/hooks`, the fall-back `GI7EBA~1` (`_long_names`)."""
    return any(part == GIT_DIR_NAME or GIT_DIR_NAME in _long_names(part)
               for part in _as_filesystems_see(path).split("/"))


def _review_as_git_reads(patch: str, review: PatchReview, tree: _Tree) -> None:
    """Review what `git apply` itself would write, where it reads the patch differently from unidiff.

    `git apply --numstat --summary` (run in an empty directory, nothing applied) names every path
    written and every mode created or changed; one unidiff did not see becomes a change of its own,
    and a patch git refuses to read is `unreadable`.
    """
    with tempfile.TemporaryDirectory(prefix="agent-patch-") as scratch:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
        result = subprocess.run(["git", "apply", "--numstat", "--summary", "-z", "-"], input=patch.encode(),
                                cwd=scratch, env=env, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        review.findings.append(Finding("unreadable", "(patch)", f"git apply: {detail[0] if detail else 'refused'}"))
        return
    *numstat, summary = result.stdout.decode(errors="surrogateescape").split("\0")
    known = {path for change in review.files for path in change.paths}
    counted = [entry.split("\t", 2) for entry in numstat if entry.count("\t") >= 2]  # [added, deleted, path]
    edited = {path for added, deleted, path in counted if (added, deleted) != ("0", "0")}  # "-" for binary
    extra = [FileChange(path=path, action="modified", edited=path in edited) for _, _, path in counted
             if path not in known]
    for line in summary.splitlines():
        if match := _SUMMARY_MODE.match(line):
            old_mode, new_mode = match.group("old"), match.group("new_") or match.group("created")
            path = _unquote(match["path"])
            if not any((path in c.paths or path == c.path) and _mode(c.new_mode) == _mode(new_mode)
                       and (old_mode is None or _mode(c.old_mode) == _mode(old_mode)) for c in review.files + extra):
                extra.append(FileChange(path=path, action="added" if old_mode is None else "modified",
                                        old_mode=old_mode, new_mode=new_mode, edited=path in edited))
    for change in extra:
        change = FileChange(**(asdict(change) | {"paths": (change.path,)}))
        review.files.append(change)
        named = {(finding.kind, finding.path) for finding in review.findings}
        review.findings += [f for f in _findings(change, tree) if (f.kind, f.path) not in named]
        if _is_symlink(change.new_mode):  # git's reading gives no target to check: name it
            review.findings.append(Finding("symlink_outside", change.path, "a link unidiff did not read"))


# `git apply --summary` lines that carry modes: "create mode 100755 x", "mode change 100644 => 100755 x".
_SUMMARY_MODE = re.compile(r"^ (?:create mode (?P<created>\d+)|mode change (?P<old>\d+) => (?P<new_>\d+)) (?P<path>.+)$")


def enforce(review: PatchReview, allow: Iterable[str], kept_in: Path | None = None) -> None:
    """Raise `PatchRefused` naming every change of a kind not allowed; the patch is then not delivered.

    `kept_in` names where the patch stays readable (the run's trajectory), so no work is lost.
    """
    refused = review.refused(allow)
    if refused:
        kinds = sorted({finding.kind for finding in refused} - NEVER_ALLOWED)
        hint = f"; to allow, add {kinds} to [patch_policy] allow in your own config" if kinds else ""
        kept = f"; the patch is kept in {kept_in}" if kept_in else ""
        raise PatchRefused(f"the patch was not pushed: {'; '.join(map(str, refused))}{hint}{kept}")


def _file_change(patched: Any, mark: str = "") -> FileChange:
    source, target = _strip_side(patched.source_file), _strip_side(patched.target_file)
    headers = _extended_headers(patched)
    moved_from = headers.get("rename from") or headers.get("copy from")
    moved_to = headers.get("rename to") or headers.get("copy to")
    if patched.is_added_file:
        action, path = "added", target
    elif patched.is_removed_file:
        action, path = "removed", source
    elif moved_to:
        action, path, source = ("copied" if "copy to" in headers else "renamed"), moved_to, moved_from or source
    elif patched.is_rename or (source and target and source != target):
        action, path = "renamed", target
    else:
        action, path = "modified", target or source
    named = [path, source, target, moved_from, moved_to, *_diff_git_paths(patched)]
    if mark:  # `_names_told_apart`'s stand-in for a space
        path, source = (name.replace(mark, " ") if name else name for name in (path, source))
        named = [name.replace(mark, " ") for name in named if name]
    return FileChange(path=path or "", action=action,
                      old_path=source if action in ("renamed", "copied") else None,
                      old_mode=patched.source_mode, new_mode=patched.target_mode, binary=patched.is_binary_file,
                      edited=len(patched) > 0 or patched.is_binary_file,
                      paths=tuple(dict.fromkeys(name for name in named if name)))


def _extended_headers(patched: Any) -> dict[str, str]:
    """Git's extended header lines of one file (`rename to x`, `copy from y`) as {keyword: path}."""
    found: dict[str, str] = {}
    for line in getattr(patched, "patch_info", None) or ():
        for keyword in ("rename from", "rename to", "copy from", "copy to"):
            if line.startswith(keyword + " "):
                found[keyword] = _unquote(line[len(keyword) + 1:].rstrip("\n"))
    return found


def _names_told_apart(patch: str) -> tuple[str, str]:
    """`patch` for the parser, and the mark it put in names: unidiff splits an unquoted `diff --git`
    line at its last ` b/`, so a folder named `x b` (`diff --git a/x b/n b/x b/n`) made the whole patch
    unreadable. Each such line is split as git splits it (`_git_split`), and in that file's header
    lines (`diff --git`, `---`/`+++`, rename/copy) the space of every ` b/` inside a name becomes the
    mark, a private-use character the patch does not hold; `_file_change` turns it back into a space.
    A line no header disambiguates is left as it is. Hunks and binary data are not touched."""
    mark = next(chr(code) for code in range(0xE000, 0xF900) if chr(code) not in patch)
    lines = patch.splitlines(keepends=True)
    for start, line in enumerate(lines):
        if not line.startswith("diff --git a/") or line.count(" b/") < 2:
            continue
        block = list(itertools.takewhile(lambda item: not item.startswith(("@@", "diff --git ", "GIT binary patch")),
                                         lines[start + 1:]))
        split = _git_split(line[len("diff --git "):].rstrip("\r\n"), block)
        if split is None:
            continue
        marked = [name[:2] + name[2:].replace(" b/", mark + "b/") for name in split]
        lines[start] = f"diff --git {marked[0]} {marked[1]}{line[len(line.rstrip(chr(13) + chr(10))):]}"
        for offset, header in enumerate(block, start + 1):
            keyword = next((k for k in _NAME_HEADERS if header.startswith(k)), None)
            if keyword is not None:
                lines[offset] = keyword + header[len(keyword):].replace(" b/", mark + "b/")
    return "".join(lines), mark


_NAME_HEADERS = ("--- ", "+++ ", "rename from ", "rename to ", "copy from ", "copy to ")


def _git_split(rest: str, block: list[str]) -> tuple[str, str] | None:
    """The (a/old, b/new) halves of an unquoted `diff --git` line's `rest`, as git tells them apart:
    the names equal (a modification, an addition, a removal), else the one its headers name."""
    splits = [(rest[:i], rest[i + 1:]) for i in range(len(rest)) if rest.startswith(" b/", i)]
    same = [(old, new) for old, new in splits if old[2:] == new[2:]]
    if len(same) == 1:
        return same[0]
    named = set()
    for header in block:
        keyword = next((k for k in _NAME_HEADERS if header.startswith(k)), None)
        name = header[len(keyword or ""):].rstrip("\r\n").removesuffix("\t")
        if keyword in ("--- ", "+++ "):
            named.add(name)
        elif keyword is not None:
            named.add(("a/" if "from" in keyword else "b/") + name)
    told = [(old, new) for old, new in splits if old in named or new in named]
    return told[0] if len(told) == 1 else None


def _diff_git_paths(patched: Any) -> list[str]:
    """The a/ and b/ paths of the `diff --git` line, where they can be told apart (else none: the
    other headers name the file)."""
    for line in getattr(patched, "patch_info", None) or ():
        if line.startswith("diff --git "):
            rest = line[len("diff --git "):].rstrip("\n")
            if rest.startswith('"'):
                end = rest.find('" ', 1)
                halves = [rest[:end + 1], rest[end + 2:]] if end > 0 else []
            else:
                halves = rest.split(" b/", 1) if rest.count(" b/") == 1 else []
                halves = [halves[0], "b/" + halves[1]] if len(halves) == 2 else []
            return [name for name in map(_strip_side, halves) if name]
    return []


def _findings(change: FileChange, tree: _Tree) -> list[Finding]:
    found: list[Finding] = []
    paths = list(dict.fromkeys([change.path, *([change.old_path] if change.old_path else []), *change.paths]))
    for path in paths:
        found += [Finding(kind, path, change.action) for kind in _name_kinds(path, tree)]
    if any(_mode(mode) is not None and _mode(mode) & 0o170000 == 0o160000 for mode in (change.old_mode, change.new_mode)):
        found.append(Finding("submodules", change.path, "gitlink"))
    seen_as = _as_filesystems_see(change.path)
    if _is_symlink(change.new_mode) and any(prefix.startswith(seen_as + "/") and _read_whatever_it_leads_to(prefix)
                                            for prefix in CI_CONFIG_PATHS):
        found.append(Finding("ci_config", change.path, "a symlink where CI definitions are read"))
    if _is_executable(change.new_mode) and not _is_executable(change.old_mode) and change.action != "removed":
        found.append(Finding("executable", change.path, f"mode {change.old_mode or 'new'} -> {change.new_mode}"))
    elif _is_executable(change.old_mode) and change.action != "removed" and (
            _is_executable(change.new_mode) or change.edited or change.old_path):
        # Whatever its new mode: `sh b.sh` and `bash bin/x` still run a file the same patch made non-executable.
        same = _mode(change.new_mode) == _mode(change.old_mode)
        mode = change.new_mode if same else f"{change.old_mode} -> {change.new_mode}"
        found.append(Finding("executable", change.path, f"edits an executable file (mode {mode})"))
    return found


def _read_whatever_it_leads_to(entry: str) -> bool:
    """Whether a symlink in place of a folder on `entry`'s path (of `CI_CONFIG_PATHS`) is `ci_config` whatever
    it leads to: a folder of CI definitions (`.circleci/`, `bamboo-specs/`) or a hidden folder holding some
    (`.github`, `.vscode`). Not `docs`, where only `docs/CODEOWNERS` is read: a `docs` link is reviewed by what
    it reaches (`_reachable_through_redirected_links`), as other links are."""
    return entry.endswith("/") or entry.startswith(".")


def _name_kinds(path: str, tree: _Tree) -> list[str]:
    """The kinds `path`'s name alone makes a change (`ci_config`, `agent_config`, `submodules`, else
    `tool_config`), read as every file system may open it (`_readings`)."""
    readings = _readings(path, tree.names)
    kinds = ["ci_config"] if any(_is_ci_config(seen_as) or tree.in_action_dir(seen_as) or tree.is_deploy_config(seen_as)
                                 for seen_as in readings) else []
    if any(posixpath.basename(seen_as) == AGENT_CONFIG_NAME for seen_as in readings):
        kinds.append("agent_config")
    if ".gitmodules" in readings:
        kinds.append("submodules")
    if not kinds and any(_is_hidden_config(seen_as) or _is_tool_stem(seen_as, TOOL_CONFIG_STEMS)
                         or tree.is_js_config(seen_as) for seen_as in readings):
        kinds.append("tool_config")
    return kinds


def _is_hidden_config(path: str) -> bool:
    """Whether `path` (folded) has a hidden component (a name starting with "."), other than an inert
    file name (`INERT_HIDDEN_NAMES`, `INERT_HIDDEN_PATHS`)."""
    if path in INERT_HIDDEN_PATHS:
        return False
    parts = path.split("/")
    hidden = [at for at, part in enumerate(parts) if part.startswith(".") and part not in (".", "..")]
    return bool(hidden) and (hidden != [len(parts) - 1] or parts[-1] not in INERT_HIDDEN_NAMES)


def _as_filesystems_see(path: str) -> str:
    """The name a case-insensitive file system would open (macOS, Windows): `.Agent.toml` is
    `.agent.toml` there, so is `.agent.toml.` on Windows and `.agent\u200c.toml` on HFS+; compatibility
    forms and letters that upper-case to ASCII are folded too (NFKC, casefold, `_ASCII_BY_UPPER_CASE`), so
    `.ｇitmodules`, `.ſemaphore/` and `.cırcleci/` are reviewed as what a reader takes them for."""
    if path.isascii():  # NFKC, casefold and the tables leave ASCII as `lower` does (most names: a tree's every one)
        return "/".join(part.split(":", 1)[0].rstrip(". ") or part for part in path.lower().split("/"))
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", path).casefold()).translate(
        _ASCII_BY_UPPER_CASE)
    parts = (part.split(":", 1)[0].translate(_HFS_IGNORED).rstrip(". ") or part for part in folded.split("/"))
    return "/".join(parts)


def _readings(path: str, names: tuple[str, ...] = ()) -> set[str]:
    """Every protected path `path` may open on Windows, besides `_as_filesystems_see(path)` itself.

    NTFS gives every long name a DOS 8.3 short name opening the same file: `GITMOD~1` is
    `.gitmodules`, `AGENT~1.TOM` is `.agent.toml`, `.GITHUB~1/WORKFL~1/x.yml` a workflow. As
    git's `is_ntfs_dot_generic` does for `.git` and `.gitmodules`, a component of the short-name
    form (at most six characters, `~`, a number, at most three of extension; trailing dots and
    spaces and a `:stream` suffix, which `_as_filesystems_see` drops, and a leading dot ignored)
    is read as each protected name it may stand for: the first characters of the name (dots
    removed) then `~1`..`~4`, or Windows' fall-back form, the first two then four hexadecimal
    digits of a hash we cannot recompute (git knows it only for its own names), so any four are
    taken: a look-alike is listed rather than a real one missed. `names`: the long names to compare
    with (`_Tree.names`; default `_PROTECTED_NAMES`).
    """
    seen = _as_filesystems_see(path)
    choices = [[part, *_long_names(part, names or _PROTECTED_NAMES)] for part in seen.split("/")]
    readings = {""}
    for options in choices:
        readings = {f"{reading}/{option}" if reading else option for reading in readings for option in options}
        if len(readings) > 256:  # every component a short name: read as is beyond this many
            return {seen}
    return readings


_SHORT_NAME = re.compile(r"\.?(?P<base>[^~./]{1,6})~(?P<number>[1-9][0-9]*)(?:\.(?P<ext>[^.]{1,3}))?")


def _long_names(component: str, names: tuple[str, ...] = _PROTECTED_NAMES) -> list[str]:
    """The names of `names` (default: the protected ones) an 8.3 short name `component` may stand for."""
    if _SHORT_NAME.fullmatch(component) is None:
        return []
    return [name for name in names if _abbreviates(component, name)]


def _abbreviates(component: str, name: str) -> bool:
    """Whether `component` (folded by `_as_filesystems_see`) is an 8.3 short name Windows may give `name`
    (folded too): the rules `_readings` describes."""
    short = _SHORT_NAME.fullmatch(component)
    if short is None:
        return False
    base, ext = short["base"], short["ext"] or ""
    stem, _, long_ext = name.lstrip(".").rpartition(".") if "." in name.lstrip(".") else (name.lstrip("."), "", "")
    letters = stem.replace(".", "")
    if ext != long_ext[:3]:
        return False
    regular = letters.startswith(base) and (len(base) == 6 or base == letters) and int(short["number"]) <= 4
    fall_back = len(base) == 6 and base[:2] == letters[:2] and re.fullmatch("[0-9a-f]{4}", base[2:]) is not None
    return regular or fall_back


def _mode(mode: str | None) -> int | None:
    try:
        return int(mode.strip(), 8) if mode else None
    except ValueError:
        return None


def _is_symlink(mode: str | None) -> bool:
    """Git stores any 12xxxx mode as a symlink (120000)."""
    value = _mode(mode)
    return value is not None and value & 0o170000 == 0o120000


def _is_executable(mode: str | None) -> bool:
    """Git stores any regular-file mode with the owner's x bit (100775, 100700, 755, 0100755) as 100755."""
    value = _mode(mode)
    return value is not None and value & 0o170000 in (0, 0o100000) and bool(value & 0o100)


def _is_ci_config(path: str) -> bool:
    """Whether `path` (as `_as_filesystems_see` gives it) is a CI definition: `CI_CONFIG_PATHS`,
    `CI_CONFIG_NAMES_ANYWHERE`, `DEPLOY_CONFIG_NAMES_ANYWHERE`, `TOOL_STEMS`."""
    name, folders = posixpath.basename(path), path.split("/")[:-1]
    if any(fnmatch.fnmatchcase(name, pattern) and not _another_file_type(name, pattern)
           for pattern in CI_CONFIG_NAMES_ANYWHERE):
        return True
    if any(entry.rstrip("/") in folders if entry.endswith("/") else name == entry
           for entry in DEPLOY_CONFIG_NAMES_ANYWHERE) or _is_tool_stem(path):
        return True
    return any((path.startswith(prefix) or path == prefix.rstrip("/")) if prefix.endswith("/") else path == prefix
               for prefix in CI_CONFIG_PATHS)


def _hunk_lines(patched: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A file's (added, removed) lines, without their line ends."""
    lines = [line for hunk in patched for line in hunk]
    return (tuple(line.value.rstrip("\r\n") for line in lines if line.is_added),
            tuple(line.value.rstrip("\r\n") for line in lines if line.is_removed))


def _symlink_target(patched: Any) -> str:
    """A symlink's content is its target: the added lines of its one hunk."""
    return "".join(line.value for hunk in patched for line in hunk if line.is_added).rstrip("\n")


def _strip_side(name: str | None) -> str | None:
    """`a/path` or `b/path` (possibly C-quoted by git) as `path`; None for /dev/null."""
    if name is None:
        return None
    name = _unquote(name)
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


_ESCAPES = {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\", "a": b"\a", "b": b"\b", "f": b"\f", "r": b"\r",
            "v": b"\v"}


def _unquote(name: str) -> str:
    """Git's C-style quoting of unusual paths (`"a/we\\"ird\\tname"`, octal bytes) undone."""
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            escaped = body[i + 1]
            if escaped in "01234567":
                out.append(int(body[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
            out += _ESCAPES.get(escaped, escaped.encode())
            i += 2
        else:
            out += body[i].encode()
            i += 1
    return out.decode("utf-8", errors="surrogateescape")

#!/usr/bin/env node
// The Kubernetes peer's process node: a node agent that registers one Node and runs the containers of the pods
// bound to it as processes on this machine, where kwok's nodes only move pods through simulated phases. It does
// what a kubelet does for the ComputeBackend conformance suite: the pod's command and args run with the pod's
// environment (values, Secret and ConfigMap keys, downward-API fields, `$(VAR)` expansion), their exit codes
// and termination reasons land in the pod's status, deletion stops them (SIGTERM, then SIGKILL after the grace
// period), and their output is served on the kubelet port, so the API server's `pods/log` (with follow,
// previous, timestamps, tailLines) works. What it does not do: pull or isolate images (the command runs on the
// host, whatever the image says), mount volumes, enforce resources, probes. The node carries the taint
// `mlplane.dev/runtime=process:NoSchedule`, so only pods that tolerate it (and select it) land here.
//
// Built on Node's standard library only, so `scripts/peers` needs no package install to start it.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    node: { type: 'string', default: 'process-node-0' },
    port: { type: 'string', default: '10250' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'work-dir': { type: 'string', default: join(tmpdir(), 'mlplane-process-node') },
    'pod-cidr-prefix': { type: 'string', default: '10.250' },
  },
});
if (!args.kubeconfig || !args.cert || !args.key) {
  console.error('usage: process-node.mjs --kubeconfig FILE --cert FILE --key FILE [--node NAME] [--port N]');
  process.exit(2);
}
const NODE = args.node;
const PORT = Number(args.port);
const NODE_IP = '127.0.0.1';
const HEARTBEAT_MS = 10_000;
const LOG_LINES_KEPT = 100_000;
const log = (...parts) => console.log(new Date().toISOString(), ...parts);

// --- API server access: the kubeconfig's cluster, client certificate and key -------------------------------------

/** The first cluster and user of a kubeconfig written by scripts/peers.d/k8s.sh (base64 *-data fields). */
function readKubeconfig(file) {
  const text = readFileSync(file, 'utf8');
  const field = (name) => {
    const m = new RegExp(`^\\s*${name}:\\s*(\\S+)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`${file}: no ${name}`);
    return m[1];
  };
  const b64 = (name) => Buffer.from(field(name), 'base64');
  return {
    server: new URL(field('server')),
    ca: b64('certificate-authority-data'),
    cert: b64('client-certificate-data'),
    key: b64('client-key-data'),
  };
}
const kube = readKubeconfig(args.kubeconfig);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Options of an HTTPS request to the API server with the kubeconfig's CA and client certificate. */
const toApiServer = (method, path, headers = {}) => ({
  host: kube.server.hostname,
  port: kube.server.port || 443,
  method,
  path,
  ca: kube.ca,
  cert: kube.cert,
  key: kube.key,
  headers: { accept: 'application/json', ...headers },
});

/** Calls `onLine` with each line of a text stream (without its newline), the last one too. */
const eachLine = (stream, onLine) =>
  createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', onLine);

/** One request to the API server; resolves the parsed JSON body, rejects ApiError for a non-2xx answer. */
function api(method, path, body, contentType = 'application/json') {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        ...toApiServer(method, path, data ? { 'content-type': contentType, 'content-length': data.length } : {}),
        timeout: 30_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode >= 200 && res.statusCode < 300) return resolve(text ? JSON.parse(text) : {});
          let message = text;
          try {
            message = JSON.parse(text).message ?? text;
          } catch {}
          reject(new ApiError(res.statusCode, `${method} ${path}: ${res.statusCode} ${message}`));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Streams a watch: calls `onEvent` per event until the server ends it; resolves then, rejects on errors. */
function watchStream(path, onEvent) {
  return new Promise((resolve, reject) => {
    const req = request(toApiServer('GET', path), (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new ApiError(res.statusCode, `watch ${path}: ${res.statusCode}`));
      }
      eachLine(res, (line) => {
        if (line.trim()) onEvent(JSON.parse(line));
      }).on('close', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const mergePatch = (path, body) => api('PATCH', path, body, 'application/merge-patch+json');
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();
/** Lease times are MicroTime: six fractional digits. */
const microNow = () => new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

// --- The Node and its heartbeat ------------------------------------------------------------------------------------

function nodeStatus() {
  const t = now();
  const condition = (type, status, reason, message) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: t,
    lastTransitionTime: startedAt,
  });
  const capacity = { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    capacity,
    allocatable: capacity,
    conditions: [
      condition('Ready', 'True', 'KubeletReady', 'process node agent is posting ready status'),
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'no memory pressure'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'no PID pressure'),
    ],
    // InternalIP only: the API server reaches the kubelet port (logs) through the first address type it knows.
    addresses: [{ type: 'InternalIP', address: NODE_IP }],
    daemonEndpoints: { kubeletEndpoint: { Port: PORT } },
    nodeInfo: {
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      operatingSystem: 'linux',
      kernelVersion: '',
      osImage: 'mlplane process node',
      containerRuntimeVersion: `process://node-${process.versions.node}`,
      kubeletVersion: 'v0.0.0-mlplane-process-node',
      kubeProxyVersion: '',
      machineID: '',
      systemUUID: '',
      bootID: '',
    },
  };
}
const startedAt = now();

async function registerNode() {
  const metadata = {
    name: NODE,
    labels: {
      'mlplane.dev/peer': 'k8s',
      'mlplane.dev/runtime': 'process',
      'kubernetes.io/hostname': NODE,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
    },
  };
  const spec = { taints: [{ key: 'mlplane.dev/runtime', value: 'process', effect: 'NoSchedule' }] };
  try {
    await api('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata, spec });
  } catch (error) {
    if (error.status !== 409) throw error;
    await mergePatch(`/api/v1/nodes/${NODE}`, { metadata: { labels: metadata.labels }, spec });
  }
  await heartbeat();
}

async function heartbeat() {
  await mergePatch(`/api/v1/nodes/${NODE}/status`, { status: nodeStatus() });
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${NODE}`;
  const spec = { holderIdentity: NODE, leaseDurationSeconds: 40, renewTime: microNow() };
  try {
    await mergePatch(leasePath, { spec });
  } catch (error) {
    if (error.status !== 404) throw error;
    await api('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: NODE, namespace: 'kube-node-lease' },
      spec,
    });
  }
}

// --- Pods ------------------------------------------------------------------------------------------------------------

/** Per pod uid: what runs, its containers' states and output, and a queue that keeps status patches in order. */
const runs = new Map();
let nextIp = 1;
const allocateIp = () => {
  const n = nextIp++;
  return `${args['pod-cidr-prefix']}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
};

const isTerminalPhase = (phase) => phase === 'Succeeded' || phase === 'Failed';

/** `$(VAR)` references expanded as the kubelet does; `$$(VAR)` escapes; unknown references stay as written. */
function expand(text, env) {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) =>
    m === '$$' ? '$' : name in env ? env[name] : m,
  );
}

function fieldValue(pod, run, path) {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return pod.metadata[m[1]]?.[m[2]] ?? '';
  const fields = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': pod.spec.serviceAccountName ?? '',
    'status.podIP': run.podIP,
    'status.podIPs': run.podIP,
    'status.hostIP': NODE_IP,
    'status.hostIPs': NODE_IP,
  };
  if (!(path in fields)) throw new Error(`unsupported fieldRef ${path}`);
  return fields[path];
}

class ConfigError extends Error {}

async function readKey(namespace, kind, name, key, optional) {
  const path = `/api/v1/namespaces/${namespace}/${kind === 'Secret' ? 'secrets' : 'configmaps'}/${name}`;
  let object;
  try {
    object = await api('GET', path);
  } catch (error) {
    if (error.status === 404) {
      if (optional) return undefined;
      throw new ConfigError(`${kind.toLowerCase()} "${name}" not found`);
    }
    throw error;
  }
  if (key === undefined) return object;
  const value = kind === 'Secret' ? object.data?.[key] : (object.data?.[key] ?? object.binaryData?.[key]);
  if (value === undefined) {
    if (optional) return undefined;
    throw new ConfigError(`couldn't find key ${key} in ${kind} ${namespace}/${name}`);
  }
  return kind === 'Secret' ? Buffer.from(value, 'base64').toString('utf8') : value;
}

/** The container's environment as the kubelet builds it: envFrom, then env in order, each able to use the earlier. */
async function containerEnv(pod, run, container) {
  const ns = pod.metadata.namespace;
  const env = {};
  for (const source of container.envFrom ?? []) {
    const ref = source.secretRef ?? source.configMapRef;
    const kind = source.secretRef ? 'Secret' : 'ConfigMap';
    const object = await readKey(ns, kind, ref.name, undefined, ref.optional);
    for (const [k, v] of Object.entries(object?.data ?? {})) {
      env[(source.prefix ?? '') + k] = kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
    }
  }
  for (const entry of container.env ?? []) {
    const from = entry.valueFrom;
    let value;
    if (!from) value = expand(entry.value ?? '', env);
    else if (from.fieldRef) value = fieldValue(pod, run, from.fieldRef.fieldPath);
    else if (from.secretKeyRef)
      value = await readKey(ns, 'Secret', from.secretKeyRef.name, from.secretKeyRef.key, from.secretKeyRef.optional);
    else if (from.configMapKeyRef)
      value = await readKey(
        ns,
        'ConfigMap',
        from.configMapKeyRef.name,
        from.configMapKeyRef.key,
        from.configMapKeyRef.optional,
      );
    else if (from.resourceFieldRef) value = '0';
    if (value !== undefined) env[entry.name] = value;
  }
  return env;
}

/** Queues a status patch of the pod; patches of one pod go out one at a time, in order. */
function patchStatus(run) {
  const status = podStatus(run);
  const path = `/api/v1/namespaces/${run.namespace}/pods/${run.name}/status`;
  run.patches = run.patches
    .then(() => mergePatch(path, { metadata: { uid: run.uid }, status }))
    .catch((error) => {
      if (error.status !== 404 && error.status !== 409) log(`status of ${run.namespace}/${run.name}:`, error.message);
    });
  return run.patches;
}

function containerStatus(run, c) {
  const base = { name: c.name, image: c.image, imageID: '', restartCount: c.restarts, started: c.state === 'running' };
  const terminated = (t) => ({
    terminated: {
      exitCode: t.exitCode,
      reason: t.reason,
      ...(t.message ? { message: t.message } : {}),
      startedAt: t.startedAt ?? t.finishedAt,
      finishedAt: t.finishedAt,
      containerID: `process://${run.uid}/${c.name}/${t.attempt}`,
    },
  });
  const state =
    c.state === 'running'
      ? { running: { startedAt: c.startedAt } }
      : c.state === 'terminated'
        ? terminated(c.terminated)
        : {
            waiting: {
              reason: c.waitingReason ?? 'ContainerCreating',
              ...(c.waitingMessage ? { message: c.waitingMessage } : {}),
            },
          };
  return {
    ...base,
    ready: c.state === 'running',
    state,
    ...(c.previous ? { lastState: terminated(c.previous) } : {}),
    ...(c.state === 'running' ? { containerID: `process://${run.uid}/${c.name}/${c.restarts}` } : {}),
  };
}

function podStatus(run) {
  const t = now();
  const containers = run.containers;
  const allRunning = containers.every((c) => c.state === 'running');
  const cond = (type, ok, reason) => ({
    type,
    status: ok ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: t,
    ...(ok || !reason ? {} : { reason }),
  });
  const ready = run.phase === 'Running' && allRunning;
  return {
    phase: run.phase,
    ...(run.reason ? { reason: run.reason, message: run.message } : {}),
    hostIP: NODE_IP,
    hostIPs: [{ ip: NODE_IP }],
    podIP: run.podIP,
    podIPs: [{ ip: run.podIP }],
    ...(run.startTime ? { startTime: run.startTime } : {}),
    conditions: [
      cond('PodReadyToStartContainers', true),
      cond('Initialized', run.initialized, 'ContainersNotInitialized'),
      cond('Ready', ready, isTerminalPhase(run.phase) ? 'PodCompleted' : 'ContainersNotReady'),
      cond('ContainersReady', ready, isTerminalPhase(run.phase) ? 'PodCompleted' : 'ContainersNotReady'),
      cond('PodScheduled', true),
    ],
    ...(run.initContainers.length
      ? { initContainerStatuses: run.initContainers.map((c) => containerStatus(run, c)) }
      : {}),
    containerStatuses: containers.map((c) => containerStatus(run, c)),
  };
}

function newContainerState(spec) {
  return {
    name: spec.name,
    image: spec.image,
    spec,
    state: 'waiting',
    restarts: 0,
    /** Output of each attempt (index = restart count): { at, line } records. */
    logs: [[]],
    followers: new Set(),
  };
}

/** Starts the pod: resolves each container's environment, then runs init containers in order, then the rest. */
async function startPod(pod) {
  const run = {
    uid: pod.metadata.uid,
    name: pod.metadata.name,
    namespace: pod.metadata.namespace,
    pod,
    phase: 'Pending',
    podIP: allocateIp(),
    initialized: !(pod.spec.initContainers?.length > 0),
    initContainers: (pod.spec.initContainers ?? []).map(newContainerState),
    containers: pod.spec.containers.map(newContainerState),
    patches: Promise.resolve(),
    stopping: false,
    dir: join(args['work-dir'], `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`),
  };
  runs.set(run.uid, run);
  mkdirSync(run.dir, { recursive: true });
  patchStatus(run);
  log(`starting ${run.namespace}/${run.name}`);
  run.startTime = now();
  for (const c of run.initContainers) {
    const code = await runContainer(run, c, { init: true });
    if (run.stopping) return;
    if (code !== 0) return finish(run);
  }
  run.initialized = true;
  if (run.stopping) return;
  run.phase = 'Running';
  await Promise.all(run.containers.map((c) => runContainer(run, c, { init: false })));
  if (!run.stopping) finish(run);
}

function finish(run) {
  if (isTerminalPhase(run.phase)) return;
  const all = [...run.initContainers, ...run.containers];
  run.phase =
    all.every((c) => c.state !== 'terminated' || c.terminated.exitCode === 0) && run.initialized
      ? 'Succeeded'
      : 'Failed';
  for (const c of run.containers) {
    if (c.state === 'waiting') {
      c.state = 'terminated';
      c.terminated = { exitCode: 137, reason: 'ContainerStatusUnknown', finishedAt: now(), attempt: c.restarts };
    }
  }
  log(`${run.namespace}/${run.name} ${run.phase}`);
  patchStatus(run);
}

/** Runs one container to its end, restarting it as the pod's restartPolicy says; resolves its last exit code. */
async function runContainer(run, c, { init }) {
  const policy = init ? 'OnFailure' : (run.pod.spec.restartPolicy ?? 'Always');
  for (;;) {
    let env;
    // A missing Secret or ConfigMap keeps the container waiting, retried, as on a kubelet.
    for (;;) {
      try {
        env = await containerEnv(run.pod, run, c.spec);
        break;
      } catch (error) {
        if (run.stopping) return 137;
        c.state = 'waiting';
        c.waitingReason = error instanceof ConfigError ? 'CreateContainerConfigError' : 'CreateContainerError';
        c.waitingMessage = error.message;
        patchStatus(run);
        await delay(2_000);
      }
    }
    if (run.stopping) return 137;
    const code = await execute(run, c, env);
    if (run.stopping) return code;
    const restart = policy === 'Always' || (policy === 'OnFailure' && code !== 0);
    if (!restart || (init && code === 0)) return code;
    c.previous = c.terminated;
    c.restarts += 1;
    c.logs[c.restarts] = [];
    c.state = 'waiting';
    c.waitingReason = 'CrashLoopBackOff';
    patchStatus(run);
    await delay(Math.min(1000 * 2 ** (c.restarts - 1), 10_000));
    if (run.stopping) return code;
  }
}

function appendLog(c, attempt, line) {
  const lines = c.logs[attempt];
  lines.push({ at: new Date().toISOString(), line });
  if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
  for (const follower of c.followers) follower(attempt);
}

/** Spawns the container's command in its own process group; resolves its exit code once it ended. */
function execute(run, c, podEnv) {
  const attempt = c.restarts;
  const command = [...(c.spec.command ?? []), ...(c.spec.args ?? [])].map((part) => expand(part, podEnv));
  return new Promise((resolve) => {
    const startedAt = now();
    const end = (exitCode, reason, message) => {
      if (c.state === 'terminated' && c.terminated?.attempt === attempt) return;
      c.state = 'terminated';
      c.process = undefined;
      c.terminated = { exitCode, reason, message, startedAt, finishedAt: now(), attempt };
      for (const follower of c.followers) follower(attempt);
      patchStatus(run);
      resolve(exitCode);
    };
    if (!c.spec.command?.length) {
      // No image is run, so there is no entrypoint to fall back on.
      return end(128, 'StartError', 'the process node runs no images: the container needs a command');
    }
    const env = {
      PATH: process.env.PATH,
      HOME: run.dir,
      HOSTNAME: run.pod.spec.hostname ?? run.name,
      ...podEnv,
    };
    let child;
    try {
      child = spawn(command[0], command.slice(1), {
        env,
        cwd: c.spec.workingDir && existsDir(c.spec.workingDir) ? c.spec.workingDir : run.dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      return end(128, 'StartError', String(error.message));
    }
    let started = false;
    child.on('spawn', () => {
      started = true;
      c.process = child;
      c.state = 'running';
      c.startedAt = startedAt;
      c.waitingReason = undefined;
      c.waitingMessage = undefined;
      if (run.phase === 'Pending' && run.initialized) run.phase = 'Running';
      patchStatus(run);
      // A deletion that arrived while the process was starting stops it now.
      if (run.stopping) stopProcess(c);
    });
    for (const stream of [child.stdout, child.stderr]) eachLine(stream, (line) => appendLog(c, attempt, line));
    child.on('error', (error) => {
      if (!started) end(128, 'StartError', `failed to start "${command[0]}": ${error.message}`);
    });
    child.on('close', (code, signal) => {
      if (!started) return;
      const exitCode = code ?? 128 + (signalNumbers[signal] ?? 9);
      end(exitCode, exitCode === 0 ? 'Completed' : 'Error');
    });
  });
}

const signalNumbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** A workingDir is used only where it exists: the agent never creates directories outside its work dir. */
function existsDir(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function stopProcess(c, signal = 'SIGTERM') {
  if (!c.process?.pid) return;
  try {
    process.kill(-c.process.pid, signal);
  } catch {}
}

/** Deletion: SIGTERM every process, SIGKILL after the grace period, record the ends, then release the pod. */
async function stopPod(pod) {
  const run = runs.get(pod.metadata.uid);
  const grace = Math.min(pod.metadata.deletionGracePeriodSeconds ?? 30, 30);
  if (run && !run.stopping) {
    run.stopping = true;
    const live = () => [...run.initContainers, ...run.containers].filter((c) => c.process);
    for (const c of live()) stopProcess(c);
    const deadline = Date.now() + grace * 1000;
    while (live().length && Date.now() < deadline) await delay(50);
    for (const c of live()) stopProcess(c, 'SIGKILL');
    while (live().length) await delay(50);
    if (!isTerminalPhase(run.phase)) {
      // As a kubelet does since 1.27: a pod stopped by its deletion ends Failed unless every container succeeded.
      finish(run);
    }
    await run.patches;
  } else if (run?.stopping) {
    return;
  }
  try {
    await api('DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, {
      gracePeriodSeconds: 0,
      preconditions: { uid: pod.metadata.uid },
    });
  } catch (error) {
    if (error.status !== 404 && error.status !== 409) log(`deleting ${pod.metadata.name}:`, error.message);
  }
}

function onPod(type, pod) {
  const uid = pod.metadata.uid;
  if (type === 'DELETED') {
    const run = runs.get(uid);
    if (run) {
      run.stopping = true;
      for (const c of [...run.initContainers, ...run.containers]) stopProcess(c, 'SIGKILL');
      runs.delete(uid);
    }
    return;
  }
  if (pod.metadata.deletionTimestamp) {
    void stopPod(pod);
    return;
  }
  const run = runs.get(uid);
  if (run) {
    run.pod = pod;
    return;
  }
  if (isTerminalPhase(pod.status?.phase)) return;
  if (pod.status?.containerStatuses?.some((s) => s.state?.running)) {
    // Started by an earlier agent whose processes died with it: report them as gone, as a kubelet would.
    const lost = {
      uid,
      name: pod.metadata.name,
      namespace: pod.metadata.namespace,
      pod,
      phase: 'Pending',
      podIP: pod.status.podIP ?? allocateIp(),
      initialized: true,
      initContainers: [],
      containers: pod.spec.containers.map(newContainerState),
      patches: Promise.resolve(),
      stopping: false,
    };
    runs.set(uid, lost);
    finish(lost);
    return;
  }
  startPod(pod).catch((error) => log(`pod ${pod.metadata.name}:`, error.stack ?? error));
}

async function watchPods() {
  const selector = encodeURIComponent(`spec.nodeName=${NODE}`);
  for (;;) {
    try {
      const list = await api('GET', `/api/v1/pods?fieldSelector=${selector}`);
      const seen = new Set();
      for (const pod of list.items) {
        seen.add(pod.metadata.uid);
        onPod('MODIFIED', pod);
      }
      for (const [uid, run] of runs) if (!seen.has(uid)) onPod('DELETED', run.pod);
      let rv = list.metadata.resourceVersion;
      for (;;) {
        let gone = false;
        await watchStream(
          `/api/v1/pods?fieldSelector=${selector}&watch=1&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=300`,
          (event) => {
            if (event.type === 'ERROR') {
              gone = true;
              return;
            }
            rv = event.object.metadata.resourceVersion;
            if (event.type !== 'BOOKMARK') onPod(event.type, event.object);
          },
        );
        if (gone) break;
      }
    } catch (error) {
      log('pod watch:', error.message);
      await delay(1_000);
    }
  }
}

// --- The kubelet port: container logs ----------------------------------------------------------------------------------

function findRun(namespace, name) {
  let found;
  for (const run of runs.values()) if (run.namespace === namespace && run.name === name) found = run;
  return found;
}

function serveLogs(req, res, url) {
  const [, , namespace, podName, containerName] = url.pathname.split('/').map(decodeURIComponent);
  const q = url.searchParams;
  const fail = (code, message) => {
    res.writeHead(code, { 'content-type': 'text/plain' });
    res.end(message);
  };
  const run = findRun(namespace, podName);
  if (!run) return fail(404, `pod "${podName}" in namespace "${namespace}" not found on node ${NODE}`);
  const c = [...run.containers, ...run.initContainers].find((x) => x.name === containerName);
  if (!c) return fail(400, `container "${containerName}" in pod "${podName}" is not valid`);
  const previous = q.get('previous') === 'true';
  if (previous && c.restarts === 0) {
    return fail(400, `previous terminated container "${containerName}" in pod "${podName}" not found`);
  }
  const attempt = previous ? c.restarts - 1 : c.restarts;
  const timestamps = q.get('timestamps') === 'true';
  const since = q.get('sinceTime')
    ? Date.parse(q.get('sinceTime'))
    : q.get('sinceSeconds')
      ? Date.now() - Number(q.get('sinceSeconds')) * 1000
      : undefined;
  let limit = q.get('limitBytes') ? Number(q.get('limitBytes')) : Number.POSITIVE_INFINITY;
  const format = (r) => (timestamps ? `${r.at} ${r.line}\n` : `${r.line}\n`);
  let lines = c.logs[attempt] ?? [];
  if (since !== undefined) lines = lines.filter((r) => Date.parse(r.at) >= since);
  if (q.get('tailLines')) lines = lines.slice(Math.max(0, lines.length - Number(q.get('tailLines'))));
  res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
  const write = (records) => {
    for (const r of records) {
      const text = format(r);
      if (Buffer.byteLength(text) > limit) {
        res.end(text.slice(0, limit));
        return false;
      }
      limit -= Buffer.byteLength(text);
      res.write(text);
    }
    return true;
  };
  if (!write(lines)) return;
  const finished = () =>
    previous ||
    c.restarts !== attempt ||
    (c.state === 'terminated' && c.terminated?.attempt === attempt) ||
    (run.stopping && !c.process);
  if (q.get('follow') !== 'true' || finished()) return res.end();
  let sent = (c.logs[attempt] ?? []).length;
  const follower = () => {
    const all = c.logs[attempt] ?? [];
    if (all.length > sent) {
      const more = all.slice(sent);
      sent = all.length;
      if (!write(more)) return c.followers.delete(follower);
    }
    if (finished()) {
      c.followers.delete(follower);
      res.end();
    }
  };
  c.followers.add(follower);
  req.on('close', () => c.followers.delete(follower));
}

function startKubeletPort() {
  const server = createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) }, (req, res) => {
    const url = new URL(req.url, 'https://node');
    if (req.method === 'GET' && url.pathname.startsWith('/containerLogs/')) return serveLogs(req, res, url);
    if (url.pathname === '/healthz') {
      res.writeHead(200);
      return res.end('ok');
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`the process node serves /containerLogs only, not ${url.pathname}`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, NODE_IP, resolve);
  });
}

// --- main --------------------------------------------------------------------------------------------------------------

mkdirSync(args['work-dir'], { recursive: true });
await startKubeletPort();
for (;;) {
  try {
    await registerNode();
    break;
  } catch (error) {
    log('registering the node:', error.message);
    await delay(1_000);
  }
}
log(`node ${NODE} registered; kubelet port ${NODE_IP}:${PORT}`);
setInterval(() => heartbeat().catch((error) => log('heartbeat:', error.message)), HEARTBEAT_MS).unref();
const shutdown = () => {
  for (const run of runs.values())
    for (const c of [...run.initContainers, ...run.containers]) stopProcess(c, 'SIGKILL');
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
await watchPods();

// docker-compose.yaml, checked for what `docker compose up` needs to work:
// the app's settings pass the dev server's own config reader, every URL it
// is given reaches a service of the file with that service's credentials,
// and the services can start together. Image tags are not checked: any
// version is a choice, not a behaviour.
import assert from "node:assert/strict";
import { parse } from "yaml";
import { readConfig } from "../../src/dev/config.ts";

const file = new URL("../../docker-compose.yaml", import.meta.url);
const text = await Deno.readTextFile(file);

interface Service {
  image?: string;
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test?: string[] | string };
  networks?: string[];
  depends_on?: Record<string, { condition?: string }>;
  command?: string[] | string;
  working_dir?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
}

const compose = parse(text) as Compose;
const services = compose.services;
const app: Service = services.app ?? {};
const env = app.environment ?? {};

/** "HOST:CONTAINER" port mappings as numbers. */
function ports(service: Service): { host: number; container: number }[] {
  return (service.ports ?? []).map((p) => {
    const [host, container] = String(p).split(":").slice(-2).map(Number);
    return { host: host!, container: container! };
  });
}

function healthcheck(service: Service): string {
  const test = service.healthcheck?.test;
  return Array.isArray(test) ? test.join(" ") : String(test ?? "");
}

/** The service a URL reaches on the compose network, checked to listen there. */
function serviceAt(url: URL): [string, Service] {
  const service = services[url.hostname];
  assert.ok(service, `${url.hostname} is not a service of docker-compose.yaml`);
  assert.ok(
    ports(service).some((p) => p.container === Number(url.port)),
    `${url.hostname} does not expose port ${url.port}`,
  );
  assert.ok(
    service.networks?.some((n) => app.networks?.includes(n)),
    `app and ${url.hostname} share no network`,
  );
  return [url.hostname, service];
}

Deno.test("docker-compose.yaml: the app's settings pass the dev server's config reader", () => {
  assert.ok(services.app, "an app service");
  const config = readConfig([], env);
  // Inside a container the published port reaches every interface only.
  assert.doesNotMatch(config.hostname, /^(127\.|localhost$|::1$)/);
  assert.ok(
    ports(app).some((p) => p.container === config.port),
    `the app listens on ${config.port}, which no port mapping publishes`,
  );
  assert.ok(config.databaseUrl && config.jobQueueDatabaseUrl);
});

Deno.test("docker-compose.yaml: each database URL reaches its own database, with its credentials, once healthy", async (t) => {
  const urls = ["DATABASE_URL", "JOB_QUEUE_DATABASE_URL"].map((name) =>
    [name, new URL(env[name] ?? "")] as const
  );
  for (const [name, url] of urls) {
    await t.step(name, () => {
      const [host, db] = serviceAt(url);
      const database = url.pathname.slice(1);
      assert.equal(url.username, db.environment?.POSTGRES_USER);
      assert.equal(url.password, db.environment?.POSTGRES_PASSWORD);
      assert.equal(database, db.environment?.POSTGRES_DB);
      // The app starts once that very database answers.
      assert.equal(app.depends_on?.[host]?.condition, "service_healthy");
      assert.match(
        healthcheck(db),
        new RegExp(
          `pg_isready -U ${url.username} -d ${database}(\\s|$)`,
        ),
      );
    });
  }
  // DESIGN.md "Two databases": the jobs never share the application's.
  const [appDb, jobsDb] = urls.map(([, url]) => `${url.host}${url.pathname}`);
  assert.notEqual(appDb, jobsDb);
});

Deno.test("docker-compose.yaml: the app exports its traces to a service that takes OTLP", () => {
  assert.match(env.OTEL_DENO ?? "", /^(1|true)$/);
  const [, collector] = serviceAt(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT!));
  assert.equal(collector.environment?.COLLECTOR_OTLP_ENABLED, "true");
});

Deno.test("docker-compose.yaml: the services can start together", async () => {
  const published = Object.values(services).flatMap((s) =>
    ports(s).map((p) => p.host)
  );
  assert.equal(new Set(published).size, published.length, "a host port twice");
  for (const [name, service] of Object.entries(services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(":")[0]!;
      if (!/^[.\/~]/.test(source)) {
        assert.ok(
          compose.volumes && source in compose.volumes,
          `${name} mounts the undeclared volume ${source}`,
        );
      }
    }
    for (const network of service.networks ?? []) {
      assert.ok(compose.networks && network in compose.networks);
    }
  }
  // The app runs a task of deno.json in the project it mounts.
  assert.ok(
    app.volumes?.some((v) => v === `.:${app.working_dir}`),
    "the project is mounted at the working directory",
  );
  const { tasks } = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  const command = Array.isArray(app.command)
    ? app.command.join(" ")
    : String(app.command);
  const task = /^deno task ([\w:-]+)$/.exec(command)?.[1];
  assert.ok(task && task in tasks, `${command} runs no task of deno.json`);
});

// README "Quick start": `docker compose up` runs `postgres` on 5432 for the
// application, `postgres-jobs` on 5433 for the jobs, the app on :8000;
// both databases keep their data in a named volume across restarts.
Deno.test("docker-compose.yaml publishes the host ports the README names, and keeps both databases' data", () => {
  const published = (name: string) => ports(services[name] ?? {});
  assert.deepEqual(published("postgres"), [{ host: 5432, container: 5432 }]);
  assert.deepEqual(published("postgres-jobs"), [{
    host: 5433,
    container: 5432,
  }]);
  assert.ok(published("app").some((p) => p.host === 8000), "the app on :8000");
  // README "See one registration's trace in Jaeger": http://localhost:16686.
  assert.ok(
    published("jaeger").some((p) => p.host === 16686),
    "the Jaeger UI on :16686",
  );
  for (const name of ["postgres", "postgres-jobs"]) {
    const data = services[name]?.volumes?.find((v) =>
      v.endsWith(":/var/lib/postgresql/data")
    );
    const volume = data?.split(":")[0];
    assert.ok(
      volume && compose.volumes && volume in compose.volumes,
      `${name} keeps its data in a named volume`,
    );
  }
});

const dockerCompose = (() => {
  try {
    return Deno.statSync("/usr/bin/docker-compose").isFile;
  } catch {
    return false;
  }
})();

// CI installs Debian's docker-compose and sets REQUIRE_DOCKER_COMPOSE, so
// there the check always runs; elsewhere it runs where the binary exists.
const required = Deno.env.get("REQUIRE_DOCKER_COMPOSE") === "1";

Deno.test({
  name: "docker-compose config accepts docker-compose.yaml",
  ignore: !dockerCompose && !required,
  async fn() {
    const { code, stderr } = await new Deno.Command("docker-compose", {
      args: ["-f", file.pathname, "config", "-q"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  },
});

import assert from "node:assert/strict";
import { parse } from "yaml";

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
const { postgres, "postgres-jobs": jobs, app } = compose.services;

function healthcheckCommand(service: Service | undefined): string {
  const test = service?.healthcheck?.test;
  return Array.isArray(test) ? test.join(" ") : String(test);
}

Deno.test("docker-compose.yaml runs the application database on 5432", () => {
  assert.ok(postgres, "a postgres service");
  assert.equal(postgres.image, "postgres:16");
  assert.deepEqual(postgres.ports, ["5432:5432"]);
  assert.match(healthcheckCommand(postgres), /pg_isready/);
  assert.ok(postgres.networks?.includes("app-network"));
});

Deno.test("docker-compose.yaml runs the jobs database on host port 5433", () => {
  assert.ok(jobs, "a postgres-jobs service");
  assert.equal(jobs.image, "postgres:16");
  assert.deepEqual(jobs.ports, ["5433:5432"]);
  assert.deepEqual(jobs.environment, {
    POSTGRES_USER: "postgres",
    POSTGRES_PASSWORD: "postgres",
    POSTGRES_DB: "jobs",
  });
  assert.ok(
    jobs.volumes?.some((v) => v.startsWith("postgres-jobs-data:")),
    "the postgres-jobs-data volume is mounted",
  );
  assert.ok(compose.volumes && "postgres-jobs-data" in compose.volumes);
  assert.match(healthcheckCommand(jobs), /pg_isready -U postgres -d jobs/);
  assert.ok(jobs.networks?.includes("app-network"));
  assert.ok(compose.networks && "app-network" in compose.networks);
});

Deno.test("docker-compose.yaml starts the app with both URLs once both databases are healthy", () => {
  assert.ok(app, "an app service");
  assert.match(app.image ?? "", /^denoland\/deno:2\.9/);
  const command = Array.isArray(app.command)
    ? app.command.join(" ")
    : app.command;
  assert.equal(command, "deno task dev");
  assert.ok(
    app.volumes?.some((v) =>
      v.startsWith(".:") && v.endsWith(app.working_dir!)
    ),
    "the working directory is mounted",
  );
  assert.equal(
    app.environment?.JOB_QUEUE_DATABASE_URL,
    "postgresql://postgres:postgres@postgres-jobs:5432/jobs",
  );
  const appUrl = new URL(app.environment?.DATABASE_URL ?? "");
  assert.equal(appUrl.hostname, "postgres");
  assert.equal(appUrl.port, "5432");
  assert.deepEqual(app.depends_on, {
    postgres: { condition: "service_healthy" },
    "postgres-jobs": { condition: "service_healthy" },
  });
  assert.ok(app.networks?.includes("app-network"));
  // The dev server binds 127.0.0.1 unless told otherwise; in a container the
  // published port needs every interface.
  assert.equal(app.environment?.HOST, "0.0.0.0");
  assert.ok(app.ports?.includes(`${app.environment?.PORT}:8000`));
});

Deno.test("docker-compose.yaml runs Jaeger with OTLP on, and the app exports its traces there", () => {
  const jaeger = compose.services.jaeger;
  assert.ok(jaeger, "a jaeger service");
  assert.match(jaeger.image ?? "", /^jaegertracing\/all-in-one:/);
  assert.equal(jaeger.environment?.COLLECTOR_OTLP_ENABLED, "true");
  assert.ok(jaeger.ports?.includes("16686:16686"), "the UI is published");
  assert.ok(jaeger.ports?.includes("4318:4318"), "OTLP over HTTP");
  assert.ok(jaeger.networks?.includes("app-network"));
  assert.equal(app?.environment?.OTEL_DENO, "true");
  assert.equal(
    app?.environment?.OTEL_EXPORTER_OTLP_ENDPOINT,
    "http://jaeger:4318",
  );
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

using System.Globalization;
using HookBroker.BlackBox.Tests.Infrastructure;

namespace HookBroker.Docker.Tests.Infrastructure;

/// <summary>
/// The repository's docker-compose.yml with the host-network override (docker-compose.hostnet.yml), under a project
/// name of its own, on the given ports. Published ports mean nothing under host networking and docker-compose 1.29
/// refuses them, so the stack runs from the merged configuration (<c>docker-compose config</c>) without its
/// <c>ports:</c>. Disposing takes it down with its volumes and the images it built.
/// </summary>
internal sealed class ComposeStack : IAsyncDisposable
{
    private static readonly TimeSpan UpTimeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(2);

    private readonly IReadOnlyList<string> compose;
    private readonly string project = $"hbtest{Guid.NewGuid().ToString("N")[..8]}";
    private readonly DirectoryInfo folder = Directory.CreateTempSubdirectory("hookbroker-compose-");

    private ComposeStack(IReadOnlyList<string> compose) => this.compose = compose;

    private string MergedFile => Path.Combine(folder.FullName, "docker-compose.yml");

    /// <summary>
    /// The compose CLI (docker-compose, or the docker compose plugin), or skips the calling test when there is none.
    /// </summary>
    public static async Task<ComposeStack> CreateAsync(CancellationToken cancellationToken)
    {
        await DockerEnvironment.RequireAsync();
        foreach (var candidate in new[] { new[] { "docker-compose" }, ["docker", "compose"] })
        {
            try
            {
                var version = await ExternalCommand.RunAsync(candidate[0], [.. candidate.Skip(1), "version"], CommandTimeout, cancellationToken);
                if (version.ExitCode == 0)
                {
                    return new ComposeStack(candidate);
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed: try the next one
            }
        }

        Assert.Skip("no Docker engine: no docker compose CLI (docker-compose or the compose plugin); ../shared/docker/offline-images.sh installs docker-compose");
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>The user's stack: docker-compose.yml, with the tests' host-network override.</summary>
    public static readonly IReadOnlyList<string> DefaultFiles = ["docker-compose.yml", "docker-compose.hostnet.yml"];

    /// <summary>Two broker nodes on Redis: docker-compose.yml + docker-compose.redis.yml, with both host-network overrides.</summary>
    public static readonly IReadOnlyList<string> RedisFiles =
        ["docker-compose.yml", "docker-compose.redis.yml", "docker-compose.hostnet.yml", "docker-compose.redis.hostnet.yml"];

    /// <summary>Builds the images and starts every service of <see cref="DefaultFiles"/>; <paramref name="variables"/> fill the compose files' ${…}.</summary>
    public Task UpAsync(IReadOnlyDictionary<string, string> variables, CancellationToken cancellationToken) =>
        UpAsync(variables, DefaultFiles, cancellationToken);

    /// <summary>
    /// Builds the images and starts every service of <paramref name="files"/> (repository-relative, merged in order);
    /// <paramref name="variables"/> fill the compose files' ${…}.
    /// </summary>
    public async Task UpAsync(IReadOnlyDictionary<string, string> variables, IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        var envFile = Path.Combine(folder.FullName, "compose.env");
        await File.WriteAllLinesAsync(envFile, variables.Select(v => $"{v.Key}={v.Value}"), cancellationToken);
        var root = RepoPaths.Root;
        var config = await RunAsync(
            ["--env-file", envFile, "--project-directory", root, .. files.SelectMany(f => new[] { "-f", Path.Combine(root, f) }), "config"],
            CommandTimeout,
            cancellationToken);
        await File.WriteAllTextAsync(MergedFile, WithoutPublishedPorts(config), cancellationToken);
        await RunAsync([.. ProjectArguments, "up", "--detach", "--build"], UpTimeout, cancellationToken);
    }

    /// <summary>The id of a service's container.</summary>
    public async Task<string> ContainerIdAsync(string service, CancellationToken cancellationToken) =>
        (await RunAsync([.. ProjectArguments, "ps", "-q", service], CommandTimeout, cancellationToken)).Trim();

    /// <summary>Docker's view of a container: <c>{{.State.Status}}</c>, <c>{{.State.Health.Status}}</c>...</summary>
    public static async Task<string> InspectAsync(string containerId, string format, CancellationToken cancellationToken)
    {
        var result = await ExternalCommand.RunAsync("docker", ["inspect", "--format", format, containerId], CommandTimeout, cancellationToken);
        return result.ExitCode == 0 ? result.StdOut.Trim() : $"(docker inspect failed: {result.StdErr.Trim()})";
    }

    /// <summary>The services' output, for failure messages.</summary>
    public async Task<string> LogsAsync()
    {
        var logs = await ExternalCommand.RunAsync(compose[0], [.. compose.Skip(1), .. ProjectArguments, "logs", "--no-color", "--tail", "200"], CommandTimeout, CancellationToken.None);
        return logs.StdOut + logs.StdErr;
    }

    public async ValueTask DisposeAsync()
    {
        if (File.Exists(MergedFile))
        {
            TestContext.Current.TestOutputHelper?.WriteLine(await LogsAsync());
            var down = await ExternalCommand.RunAsync(
                compose[0], [.. compose.Skip(1), .. ProjectArguments, "down", "--volumes", "--rmi", "local", "--timeout", "10"], CommandTimeout, CancellationToken.None);
            if (down.ExitCode != 0)
            {
                TestContext.Current.TestOutputHelper?.WriteLine($"Could not take the stack down: {down}");
            }
        }

        folder.Delete(recursive: true);
    }

    /// <summary>
    /// Drops every <c>ports:</c> block from <c>docker-compose config</c>'s normalized output (a key line, then its list
    /// items, indented like it or deeper).
    /// </summary>
    internal static string WithoutPublishedPorts(string config)
    {
        var kept = new List<string>();
        int? portsIndent = null;
        foreach (var line in config.Split('\n'))
        {
            var indent = line.Length - line.TrimStart(' ').Length;
            if (portsIndent is { } keyIndent)
            {
                var trimmed = line.TrimStart(' ');
                if (line.Trim().Length > 0 && (indent > keyIndent || (indent == keyIndent && trimmed.StartsWith("- ", StringComparison.Ordinal))))
                {
                    continue;
                }

                portsIndent = null;
            }

            if (line.TrimEnd() == new string(' ', indent) + "ports:")
            {
                portsIndent = indent;
                continue;
            }

            kept.Add(line);
        }

        return string.Join('\n', kept);
    }

    private string[] ProjectArguments => ["--project-name", project, "-f", MergedFile];

    private async Task<string> RunAsync(IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var result = await ExternalCommand.RunAsync(compose[0], [.. compose.Skip(1), .. arguments], timeout, cancellationToken);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.StdOut;
    }

    /// <summary>A port as a compose variable value.</summary>
    public static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}

using System.Globalization;
using System.Net;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Volumes;
using Grpc.Net.Client;

namespace HookBroker.Docker.Tests.Infrastructure;

/// <summary>
/// The broker image run as a container on host networking (the only networking here: no port mapping), on free
/// loopback ports given through <c>HookBroker__*</c> variables, with its data folder on a volume.
/// Disposing stops and removes the container; the volume belongs to the caller, so a new container can reopen it.
/// </summary>
internal sealed class BrokerContainer : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    private readonly IContainer container;

    public BrokerContainer(string image, IVolume volume, int grpcPort, int httpPort)
    {
        GrpcPort = grpcPort;
        HttpPort = httpPort;
        container = new ContainerBuilder(image)
            .WithName($"hookbroker-test-{Guid.NewGuid().ToString("N")[..8]}")
            .WithCreateParameterModifier(p => p.HostConfig!.NetworkMode = "host")
            // Loopback only: with host networking the image's 0.0.0.0 would listen on every interface of the machine.
            .WithEnvironment("HookBroker__ListenAddress", "127.0.0.1")
            .WithEnvironment("HookBroker__GrpcPort", grpcPort.ToString(CultureInfo.InvariantCulture))
            .WithEnvironment("HookBroker__HttpPort", httpPort.ToString(CultureInfo.InvariantCulture))
            .WithVolumeMount(volume, "/data")
            .WithWaitStrategy(Wait.ForUnixContainer().AddCustomWaitStrategy(new HealthzAnswers(HealthAddress), o => o.WithTimeout(ReadyTimeout)))
            .Build();
    }

    public int GrpcPort { get; }

    public int HttpPort { get; }

    public string Id => container.Id;

    public string Name => container.Name.TrimStart('/');

    public Uri GrpcAddress => new($"http://127.0.0.1:{GrpcPort}");

    public Uri HealthAddress => new($"http://127.0.0.1:{HttpPort}/healthz");

    /// <summary>Starts (or starts again) the container and waits until /healthz answers 200 (60 s at most).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await container.StartAsync(cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or ContainerNotRunningException)
        {
            throw new InvalidOperationException($"The broker container did not get ready: {e.Message}\n{await LogsAsync()}", e);
        }
    }

    /// <summary>Stops the container gracefully (SIGTERM, then SIGKILL after Docker's grace period); it can start again.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => container.StopAsync(cancellationToken);

    public Task<ExecResult> ExecAsync(IList<string> command, CancellationToken cancellationToken) => container.ExecAsync(command, cancellationToken);

    /// <summary>A channel to the broker's gRPC port; the caller disposes it.</summary>
    public GrpcChannel CreateChannel() => GrpcChannel.ForAddress(GrpcAddress);

    /// <summary>Everything the container wrote, stdout then stderr.</summary>
    public async Task<string> LogsAsync()
    {
        var (stdout, stderr) = await container.GetLogsAsync(timestampsEnabled: false, ct: CancellationToken.None);
        return $"--- container {Name} stdout ---\n{stdout}\n--- stderr ---\n{stderr}";
    }

    /// <summary>Fails the test when the broker logged anything at error or critical level.</summary>
    public async Task AssertNoErrorsLoggedAsync()
    {
        var logs = await LogsAsync();
        var errors = logs.Split('\n').Where(l => l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"The broker logged {errors.Count} error(s):\n{string.Join('\n', errors)}\n\n{logs}");
    }

    public async ValueTask DisposeAsync()
    {
        TestContext.Current.TestOutputHelper?.WriteLine(await LogsAsync());
        await container.DisposeAsync();
    }

    /// <summary>Ready when GET /healthz answers 200 on the host's loopback.</summary>
    private sealed class HealthzAnswers(Uri address) : IWaitUntil
    {
        public async Task<bool> UntilAsync(IContainer container)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            try
            {
                using var response = await http.GetAsync(address);
                return response.StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false; // not listening yet
            }
            catch (TaskCanceledException)
            {
                return false; // the request's own timeout
            }
        }
    }
}

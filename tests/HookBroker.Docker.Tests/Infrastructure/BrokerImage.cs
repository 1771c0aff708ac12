using System.Diagnostics;
using HookBroker.BlackBox.Tests.Infrastructure;

namespace HookBroker.Docker.Tests.Infrastructure;

/// <summary>
/// The broker image built from src/Broker/Dockerfile with the docker CLI (Testcontainers' image builder cannot give
/// the build host networking, which the restore inside it needs here), once per test run, on first use. The tag is
/// unique to the run, so concurrent runs on one engine never share or delete each other's image; disposing removes it
/// (the build stage's layers stay in the engine's cache for the next run).
/// </summary>
public sealed class BrokerImage : IAsyncDisposable
{
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(4);
    private readonly SemaphoreSlim gate = new(1, 1);
    private string? built;
    private string? failure;

    /// <summary>The image's tag, e.g. <c>hookbroker-broker:test-1a2b3c4d</c>.</summary>
    public string Tag { get; } = $"hookbroker-broker:test-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Skips when Docker is missing; builds the image the first time (fails the test if the build fails).</summary>
    public async Task<string> RequireAsync(CancellationToken cancellationToken)
    {
        await DockerEnvironment.RequireAsync();
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (built is null && failure is null)
            {
                await BuildAsync(cancellationToken);
            }

            return built ?? throw new InvalidOperationException(failure);
        }
        finally
        {
            gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (built is not null)
        {
            await ExternalCommand.RunAsync("docker", ["image", "rm", "--force", built], TimeSpan.FromSeconds(60), CancellationToken.None);
        }

        gate.Dispose();
    }

    private async Task BuildAsync(CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        CommandResult result;
        try
        {
            result = await ExternalCommand.RunAsync(
                "docker",
                ["build", "--network", "host",
                 "--build-arg", $"BASE={DockerEnvironment.BaseImage}", "--build-arg", $"SDK_IMAGE={DockerEnvironment.SdkImage}",
                 "--tag", Tag, "--file", Path.Combine(RepoPaths.Root, "src", "Broker", "Dockerfile"), RepoPaths.Root],
                BuildTimeout,
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            failure = $"The broker image did not build: {e.Message}";
            throw;
        }

        if (result.ExitCode != 0)
        {
            failure = $"The broker image did not build: {result}";
            return;
        }

        built = Tag;
        TestContext.Current.SendDiagnosticMessage($"Built {Tag} in {elapsed.Elapsed.TotalSeconds:0.0} s.");
    }
}

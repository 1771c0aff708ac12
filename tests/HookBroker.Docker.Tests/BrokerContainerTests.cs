using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Volumes;
using Google.Protobuf.WellKnownTypes;
using HookBroker.BlackBox.Tests.Infrastructure;
using HookBroker.Docker.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Docker.Tests;

/// <summary>The broker image, run as a container: raises from an independent client, delivery, durability on its volume.</summary>
public sealed class BrokerContainerTests(BrokerImage image) : IAsyncDisposable
{
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(30);
    private readonly IVolume volume = new VolumeBuilder().WithName($"hookbroker-test-{Guid.NewGuid().ToString("N")[..8]}").Build();
    private bool volumeCreated;

    [Fact(Timeout = 270_000)]
    public async Task A_raise_by_an_independent_client_is_delivered_to_a_subscriber_and_its_ack_confirmed()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = await StartBrokerAsync(cancellationToken);
        using var channel = broker.CreateChannel();
        var client = new BrokerApi.HookBrokerClient(channel);
        await using var worker = await TestWorker.SubscribeAsync(client, "email-sender", ["user_created"], 10, cancellationToken);

        var raised = await client.RaiseAsync(UserCreated("ali"), cancellationToken: cancellationToken);

        Assert.Equal(1, raised.RoutedGroups);
        var delivery = await worker.NextDeliveryAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(raised.EventId, delivery.EventId);
        Assert.Equal("user_created", delivery.Event);
        Assert.Equal("ali@example.com", delivery.Args.Fields["email"].StringValue);
        await worker.AckAsync([delivery.DeliveryId], cancellationToken);
        var confirmation = await worker.NextConfirmationAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(SettleStatus.Confirmed, confirmation.Status);
        await broker.AssertNoErrorsLoggedAsync();
    }

    [Fact(Timeout = 270_000)]
    public async Task Answered_raises_survive_a_container_restart_and_a_new_container_on_the_same_volume()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        const string Group = "survivors";
        var answered = new Dictionary<string, string>();    // event id -> username
        var ports = FreePorts.Reserve(2);

        // Container 1: the group subscribes (it is durable from then on), then events are raised while no worker is
        // connected; the container is stopped (SIGTERM) and started again, and more events are raised.
        var first = await StartBrokerAsync(cancellationToken, ports);
        await using (first)
        {
            using (var channel = first.CreateChannel())
            {
                var client = new BrokerApi.HookBrokerClient(channel);
                await (await TestWorker.SubscribeAsync(client, Group, ["user_created"], 10, cancellationToken)).DisposeAsync();
                await RaiseAsync(client, "before-restart", 10);
            }

            await first.StopAsync(cancellationToken);
            await first.StartAsync(cancellationToken);
            using (var channel = first.CreateChannel())
            {
                await RaiseAsync(new BrokerApi.HookBrokerClient(channel), "after-restart", 10);
            }

            await first.AssertNoErrorsLoggedAsync();
        }

        // Container 2 (the first one is removed): same volume, same ports. Every answered raise is delivered.
        await using var second = await StartBrokerAsync(cancellationToken, ports);
        using var secondChannel = second.CreateChannel();
        await using var drain = await TestWorker.SubscribeAsync(
            new BrokerApi.HookBrokerClient(secondChannel), Group, ["user_created"], 100, cancellationToken);
        var delivered = new Dictionary<string, string>();
        await Poll.UntilAsync(
            async () =>
            {
                while (drain.Deliveries.TryRead(out var delivery))
                {
                    delivered[delivery.EventId] = delivery.Args.Fields["username"].StringValue;
                    await drain.AckAsync([delivery.DeliveryId], cancellationToken);
                }

                return answered.Keys.All(delivered.ContainsKey);
            },
            DeliveryTimeout,
            $"the {answered.Count} answered raises to be delivered by the new container",
            cancellationToken);
        Assert.Equal(answered.OrderBy(p => p.Key), delivered.Where(p => answered.ContainsKey(p.Key)).OrderBy(p => p.Key));
        await second.AssertNoErrorsLoggedAsync();

        async Task RaiseAsync(BrokerApi.HookBrokerClient client, string prefix, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var username = $"{prefix}-{i}";
                var response = await client.RaiseAsync(UserCreated(username), cancellationToken: cancellationToken);
                Assert.Equal(1, response.RoutedGroups);
                answered[response.EventId] = username;
            }
        }
    }

    [Fact(Timeout = 270_000)]
    public async Task The_image_health_check_reports_healthy_and_fails_when_nothing_answers()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = await StartBrokerAsync(cancellationToken);

        // The image's own HEALTHCHECK (first run one interval after the start), as Docker sees it.
        var status = "";
        await Poll.UntilAsync(
            async () =>
            {
                status = (await DockerAsync(["inspect", "--format", "{{.State.Health.Status}}", broker.Id], cancellationToken)).Trim();
                return status is "healthy" or "unhealthy";
            },
            TimeSpan.FromSeconds(60),
            "Docker to report the container's health",
            cancellationToken);
        Assert.Equal("healthy", status);

        // The same probe against a port nothing listens on exits 1: the check can fail, needing no curl.
        var probe = await broker.ExecAsync(["dotnet", "HookBroker.Broker.dll", "--health", "--HookBroker:HttpPort=1"], cancellationToken);
        Assert.Equal(1, probe.ExitCode);
        Assert.Contains("not answering", probe.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 270_000)]
    public async Task The_broker_runs_as_the_non_root_app_user_and_writes_its_data_to_the_volume()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = await StartBrokerAsync(cancellationToken);

        var id = await broker.ExecAsync(["id", "-u"], cancellationToken);
        Assert.Equal("1654", id.Stdout.Trim());
        // The broker process itself (PID 1), not only exec'd commands.
        var status = await broker.ExecAsync(["cat", "/proc/1/status"], cancellationToken);
        Assert.Contains(status.Stdout.Split('\n'), l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries).Skip(1).All(u => u == "1654"));
        var owner = await broker.ExecAsync(["stat", "--format", "%u", "/data/hookbroker.db"], cancellationToken);
        Assert.True(owner.ExitCode == 0, $"no database in /data: {owner.Stderr}");
        Assert.Equal("1654", owner.Stdout.Trim());
    }

    public async ValueTask DisposeAsync()
    {
        if (volumeCreated)
        {
            await volume.DisposeAsync();
        }
    }

    private async Task<BrokerContainer> StartBrokerAsync(CancellationToken cancellationToken, int[]? ports = null)
    {
        var tag = await image.RequireAsync(cancellationToken);
        if (!volumeCreated)
        {
            await volume.CreateAsync(cancellationToken);
            volumeCreated = true;
        }

        ports ??= FreePorts.Reserve(2);
        var broker = new BrokerContainer(tag, volume, ports[0], ports[1]);
        try
        {
            await broker.StartAsync(cancellationToken);
            return broker;
        }
        catch
        {
            await broker.DisposeAsync();
            throw;
        }
    }

    private static RaiseRequest UserCreated(string username) => new()
    {
        Event = "user_created",
        Args = new Struct
        {
            Fields = { ["username"] = Value.ForString(username), ["email"] = Value.ForString($"{username}@example.com") },
        },
    };

    private static async Task<string> DockerAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var result = await ExternalCommand.RunAsync("docker", arguments, TimeSpan.FromSeconds(30), cancellationToken);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.StdOut;
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using HookBroker.BlackBox.Tests.Infrastructure;
using HookBroker.Docker.Tests.Infrastructure;
using HookBroker.Protocol.V1;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;

namespace HookBroker.Docker.Tests;

/// <summary>
/// The compose variant with two broker nodes on Redis (docker-compose.redis.yml), brought up as a user would: an event
/// raised on node 1 is delivered through node 2, the state is in Redis, and the samples work against both nodes.
/// </summary>
public sealed class ComposeRedisTests
{
    private const string RedisImage = "local/redis:7";
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan EmailTimeout = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 290_000)]
    public async Task An_event_raised_on_node_1_is_delivered_through_node_2_and_the_samples_work_across_both_nodes()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var stack = await ComposeStack.CreateAsync(cancellationToken);
        var image = Environment.GetEnvironmentVariable("HOOKBROKER_REDIS_IMAGE") is { Length: > 0 } chosen ? chosen : RedisImage;
        if ((await ExternalCommand.RunAsync("docker", ["image", "inspect", "--format", "{{.Id}}", image], TimeSpan.FromSeconds(30), cancellationToken)).ExitCode != 0)
        {
            Assert.Skip($"no Docker engine: Redis image {image} is missing (no registry here): ../shared/docker/offline-images.sh builds local/redis:7");
        }

        var ports = FreePorts.Reserve(8);
        var (grpc1, grpc2, webPort, mailWebPort, redisPort) = (ports[0], ports[2], ports[4], ports[5], ports[7]);
        await stack.UpAsync(
            new Dictionary<string, string>
            {
                ["HOOKBROKER_GRPC_PORT"] = ComposeStack.Port(grpc1),
                ["HOOKBROKER_HTTP_PORT"] = ComposeStack.Port(ports[1]),
                ["HOOKBROKER_2_GRPC_PORT"] = ComposeStack.Port(grpc2),
                ["HOOKBROKER_2_HTTP_PORT"] = ComposeStack.Port(ports[3]),
                ["HOOKBROKER_WEB_PORT"] = ComposeStack.Port(webPort),
                ["MAILDEV_WEB_PORT"] = ComposeStack.Port(mailWebPort),
                ["MAILDEV_SMTP_PORT"] = ComposeStack.Port(ports[6]),
                ["REDIS_PORT"] = ComposeStack.Port(redisPort),
                ["HOOKBROKER_REDIS_IMAGE"] = image,
                ["HOOKBROKER_BASE_IMAGE"] = DockerEnvironment.BaseImage,
                ["HOOKBROKER_SDK_IMAGE"] = DockerEnvironment.SdkImage,
            },
            ComposeStack.RedisFiles,
            cancellationToken);

        var broker1 = await stack.ContainerIdAsync("broker", cancellationToken);
        var broker2 = await stack.ContainerIdAsync("broker-2", cancellationToken);
        var redis = await stack.ContainerIdAsync("redis", cancellationToken);
        var web = await stack.ContainerIdAsync("web", cancellationToken);
        var worker = await stack.ContainerIdAsync("worker", cancellationToken);
        try
        {
            await Poll.UntilAsync(
                async () => await ComposeStack.InspectAsync(broker1, "{{.State.Health.Status}}", cancellationToken) == "healthy"
                    && await ComposeStack.InspectAsync(broker2, "{{.State.Health.Status}}", cancellationToken) == "healthy"
                    && await ComposeStack.InspectAsync(web, "{{.State.Health.Status}}", cancellationToken) == "healthy"
                    && await ComposeStack.InspectAsync(worker, "{{.State.Status}}", cancellationToken) == "running",
                ReadyTimeout,
                "both broker nodes and the web app to be healthy and the worker running",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\n{await stack.LogsAsync()}");
        }

        // A raw subscriber on node 2; the raise on node 1 is routed once node 1 knows the group (through Redis).
        using var channel1 = GrpcChannel.ForAddress($"http://127.0.0.1:{grpc1}");
        using var channel2 = GrpcChannel.ForAddress($"http://127.0.0.1:{grpc2}");
        await using var subscriber = await TestWorker.SubscribeAsync(new BrokerApi.HookBrokerClient(channel2), "compose-probe", ["compose_probe"], 10, cancellationToken);
        var node1 = new BrokerApi.HookBrokerClient(channel1);
        var request = new RaiseRequest { Event = "compose_probe", Args = new Struct { Fields = { ["via"] = Value.ForString("node 1") } } };
        RaiseResponse? raised = null;
        await Poll.UntilAsync(
            async () => (raised = await node1.RaiseAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: cancellationToken)).RoutedGroups > 0,
            DeliveryTimeout,
            "node 1 to route compose_probe to the group subscribed on node 2",
            cancellationToken);
        var delivery = await subscriber.NextDeliveryAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(raised!.EventId, delivery.EventId);
        Assert.Equal("node 1", delivery.Args.Fields["via"].StringValue);
        await subscriber.AckAsync([delivery.DeliveryId], cancellationToken);
        Assert.Equal(SettleStatus.Confirmed, (await subscriber.NextConfirmationAsync(DeliveryTimeout, cancellationToken)).Status);

        // The state is in Redis.
        var dbsize = await ExternalCommand.RunAsync(
            "docker", ["exec", redis, "redis-cli", "-p", ComposeStack.Port(redisPort), "DBSIZE"], TimeSpan.FromSeconds(30), cancellationToken);
        Assert.True(dbsize.ExitCode == 0 && long.TryParse(dbsize.StdOut.Trim(), out var keys) && keys > 0, $"Redis holds no key: {dbsize}");

        // The samples, given both nodes: a user created through the web app gets the worker's welcome email.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var email = $"ali-{Guid.NewGuid().ToString("N")[..8]}@example.com";
        using var created = await http.PostAsJsonAsync(new Uri($"http://127.0.0.1:{webPort}/users"), new { username = "ali", email }, cancellationToken);
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"POST /users answered {created.StatusCode}: {await created.Content.ReadAsStringAsync(cancellationToken)}");
        var inbox = new Uri($"http://127.0.0.1:{mailWebPort}/api/email");
        try
        {
            await Poll.UntilAsync(
                async () =>
                {
                    using var emails = JsonDocument.Parse(await http.GetStringAsync(inbox, cancellationToken));
                    return emails.RootElement.EnumerateArray().Any(e => e.GetProperty("to").EnumerateArray()
                        .Any(to => string.Equals(to.GetProperty("address").GetString(), email, StringComparison.OrdinalIgnoreCase)));
                },
                EmailTimeout,
                $"the welcome email to {email} in MailDev",
                cancellationToken);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\n{await stack.LogsAsync()}");
        }
    }
}

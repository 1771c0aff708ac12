using Grpc.Core;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace HookBroker.Client.Internal;

/// <summary>The hooks a worker host runs (kept apart from any app-level <see cref="Hooks"/> registration).</summary>
internal sealed record WorkerHooks(Hooks Hooks);

/// <summary>
/// The worker host: subscribes its group to the labels of its hooks, runs them (see <see cref="SubscriptionSession"/>),
/// and reconnects with exponential backoff and jitter whenever the broker is unreachable or ends the stream.
/// </summary>
internal sealed class HookWorkerService(
    IOptions<HookWorkerOptions> options,
    WorkerHooks hooks,
    IServiceScopeFactory scopes,
    ILoggerFactory loggerFactory,
    TimeProvider time) : BackgroundService
{
    private readonly ILogger logger = loggerFactory.CreateLogger<HookWorkerService>();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        var registrations = hooks.Hooks.Snapshot();
        var labels = hooks.Hooks.Labels;
        if (labels.Count == 0)
        {
            throw new InvalidOperationException($"The worker of group '{settings.Group}' has no hooks: register some with hooks.Event(...) before AddHookWorker.");
        }

        // Keepalive pings detect a dead connection under an idle stream; with several nodes, each (re)subscription goes
        // to a node whose connection is ready.
        using var channel = BrokerChannel.Create(BrokerAddresses.Effective(settings.Address, settings.Addresses), settings.ConnectTimeout, loggerFactory);
        var invoker = channel.Channel.CreateCallInvoker();
        var reconnect = BuildReconnectPipeline(settings);
        var start = new SubscribeStart
        {
            Group = settings.Group,
            MaxInFlight = settings.MaxInFlight,
            WorkerName = settings.WorkerName ?? $"{Environment.MachineName}/{Environment.ProcessId}",
            // The worker reads only the confirmations of settlements that were refused (it logs them).
            OmitConfirmed = true,
        };
        start.Events.AddRange(labels);

        while (!stoppingToken.IsCancellationRequested)
        {
            SubscriptionSession session;
            try
            {
                session = await reconnect.ExecuteAsync(
                    async ct => await ConnectAsync(invoker, start, registrations, settings, ct),
                    stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e)
            {
                WorkerLog.Refused(logger, settings.Group, e.StatusCode, e.Status.Detail);
                throw;
            }

            Exception? ended;
            using (session)
            {
                ended = await session.RunAsync(stoppingToken);
            }

            if (ended is null || stoppingToken.IsCancellationRequested)
            {
                return;
            }

            if (ended is RpcException rpc && !IsRetriable(rpc.StatusCode))
            {
                WorkerLog.Refused(logger, settings.Group, rpc.StatusCode, rpc.Status.Detail);
                throw rpc;
            }

            WorkerLog.StreamEnded(logger, settings.Group, ended.Message);
            try
            {
                // A short pause, so a broker that is going down is not asked again at once; failures then back off.
                await Task.Delay(settings.ReconnectInitialDelay, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task<SubscriptionSession> ConnectAsync(
        CallInvoker invoker, SubscribeStart start, HookRegistration[] registrations, HookWorkerOptions settings, CancellationToken cancellationToken)
    {
        // Deliveries arrive with their args as the serialized Struct (RawSubscribeResponse), read straight into JSON.
        var call = invoker.AsyncDuplexStreamingCall(RawSubscribeMethods.Subscribe, host: null, new CallOptions());
        try
        {
            await using var cancel = cancellationToken.Register(static c => ((IDisposable)c!).Dispose(), call);
            await call.RequestStream.WriteAsync(new SubscribeRequest { Subscribe = start }, cancellationToken);
            if (!await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "the stream ended before 'subscribed'"));
            }

            var subscribed = call.ResponseStream.Current.Subscribed
                ?? throw new RpcException(new Status(StatusCode.Internal, "the first Subscribe response is not 'subscribed'"));
            var ackDeadline = subscribed.AckDeadline?.ToTimeSpan() ?? TimeSpan.Zero;
            WorkerLog.Subscribed(logger, subscribed.Group, start.Events, subscribed.WorkerId, subscribed.MaxInFlight, ackDeadline);
            return new SubscriptionSession(call, subscribed, registrations, settings, scopes, logger, time);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            call.Dispose();
            throw new OperationCanceledException("The worker stopped while subscribing.", e, cancellationToken);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    }

    private ResiliencePipeline BuildReconnectPipeline(HookWorkerOptions settings) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                // Never cancellation, never a refusal (bad group or pattern): retrying cannot fix those.
                ShouldHandle = static args => ValueTask.FromResult(
                    !args.Context.CancellationToken.IsCancellationRequested
                    && args.Outcome.Exception is RpcException rpc && IsRetriable(rpc.StatusCode)),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.ReconnectInitialDelay,
                MaxDelay = settings.ReconnectMaxDelay,
                OnRetry = args =>
                {
                    var reason = args.Outcome.Exception?.Message;
                    WorkerLog.Reconnecting(logger, settings.Group, reason, args.AttemptNumber + 1, args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();

    private static bool IsRetriable(StatusCode code) =>
        code is not (StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.PermissionDenied
            or StatusCode.Unauthenticated or StatusCode.Unimplemented or StatusCode.OK);
}

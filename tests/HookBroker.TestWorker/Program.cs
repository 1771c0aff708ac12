using HookBroker.Client;
using HookBroker.TestWorker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// A worker process the client tests steer. Settings: HookBroker__Address (or HookBroker__Addresses__0, __1...), HookBroker__Group, HookBroker__DrainTimeout...
// (bound to HookWorkerOptions). Its one hook, `slow_job(job, holdAttempts = 0)`, reports on stdout as
// "HOOK <started|finished|canceled> job=<job> event=<id> attempt=<n>" and, on attempts up to holdAttempts, waits until
// the test writes "release <job>" to its stdin. It prints "HOOK exited" when the host has stopped.
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.AddFilter("Grpc", LogLevel.Warning).AddFilter("System.Net.Http", LogLevel.Warning);
var gates = new ReleaseGates();
var hooks = new Hooks().Event("slow_job", async (string job, HookContext context, CancellationToken ct, int holdAttempts = 0) =>
{
    Report.Line("started", job, context);
    try
    {
        if (context.Attempt <= holdAttempts)
        {
            await gates.WaitAsync(job, ct);
        }
    }
    catch (OperationCanceledException) when (ct.IsCancellationRequested)
    {
        Report.Line("canceled", job, context);
        throw;
    }

    Report.Line("finished", job, context);
});
builder.Services.AddHookWorker(hooks, o => builder.Configuration.GetSection("HookBroker").Bind(o));

using var host = builder.Build();
// Console.In reads synchronously: a thread of its own, so the host starts.
_ = Task.Factory.StartNew(() => gates.ReadCommandsAsync(Console.In), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
await host.RunAsync();
Console.Out.WriteLine("HOOK exited");

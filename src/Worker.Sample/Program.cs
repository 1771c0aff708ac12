using HookBroker.Client;
using HookBroker.Worker.Sample;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

// An email sender: the worker side of `user_created`. Settings come from appsettings.json and environment variables
// (HookBroker__Address, HookBroker__Group, Smtp__Host, Smtp__Port, Smtp__From, Smtp__Security...).
var builder = Host.CreateApplicationBuilder(args);

builder.Services.AddOptions<SmtpOptions>().Bind(builder.Configuration.GetSection(SmtpOptions.Section)).ValidateOnStart();
builder.Services.AddSingleton<IValidateOptions<SmtpOptions>, SmtpOptionsValidator>();
builder.Services.AddSingleton<WelcomeEmailHooks>();

// Like Backendpy's `@hooks.event('user_created')`: the [HookEvent] methods of WelcomeEmailHooks.
var hooks = new Hooks().Add<WelcomeEmailHooks>();
builder.Services.AddHookWorker(hooks, o => builder.Configuration.GetSection("HookBroker").Bind(o));

await builder.Build().RunAsync();
